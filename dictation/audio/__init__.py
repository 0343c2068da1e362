"""Audio in: microphone capture (:mod:`.mic`), audio files (:mod:`.files`), the Silero voice
activity network and its stream (:mod:`.vad`), and the segmenter that turns speech
probabilities into segments (:mod:`.segmenter`). All core audio is 16 kHz mono float32."""
