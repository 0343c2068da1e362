# dictation: make run | make test | make lint | make bench
#
# Everything installs into .venv with the versions of constraints.txt. torch is installed
# first, alone, at its pinned CPU build, so no other package can pull a CUDA build.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
CONSTRAINTS := constraints.txt
TORCH_PIN := torch==2.13.0
SHARED ?= ../shared
HARNESS := $(SHARED)/harness
BENCH_SET ?= $(SHARED)/data/dev
PYTEST_ARGS ?=
# Debian packages the app needs: PortAudio (sounddevice), libsndfile (soundfile), typing and
# clipboard tools (X11 and Wayland), and what PyGObject (the tray's menu) builds against.
RUN_DEB_PACKAGES := libportaudio2 libsndfile1 xdotool xclip wtype wl-clipboard \
	libgirepository1.0-dev libcairo2-dev pkg-config gir1.2-gtk-3.0 gir1.2-ayatanaappindicator3-0.1
# ... and the tests: a terminal without Ctrl+Shift+V paste (xterm), a private D-Bus bus and
# gdbus for the fake RemoteDesktop portal; the desktop harnesses install their own packages.
TEST_DEB_PACKAGES := $(RUN_DEB_PACKAGES) xterm dbus libglib2.0-bin

.PHONY: help run test lint typecheck pytest bench system-deps test-system-deps install \
	install-test clean

help:
	@echo "make run    - install into $(VENV) and start the tray app (dictation)"
	@echo "make test   - system packages (as root), install with test extras, ruff, mypy, pytest"
	@echo "make lint   - ruff check + mypy"
	@echo "make bench  - WER/latency on $(BENCH_SET), whole-file and streaming"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps: reinstall only when the dependency lists change.
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -c $(CONSTRAINTS) $(TORCH_PIN)
	$(PIP) install -c $(CONSTRAINTS) -e '.[gtk]'
	touch $@

$(VENV)/.installed-test: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) install -c $(CONSTRAINTS) $(TORCH_PIN)
	$(PIP) install -c $(CONSTRAINTS) -e '.[test,gtk,base]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: system-deps install
	$(BIN)/dictation

# Installs (as root; otherwise lists) what is missing of PACKAGES.
define apt_install
	@if [ "$$(id -u)" != 0 ]; then \
	    missing=""; \
	    for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	    [ -z "$$missing" ] || echo "make: not root, not installing Debian packages:$$missing"; \
	    exit 0; \
	fi; \
	missing=""; \
	for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "make: apt-get install$$missing"; \
	    apt-get update -qq; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

# What the app needs (as root: apt-get what is missing; otherwise say what is).
system-deps:
	$(call apt_install,$(RUN_DEB_PACKAGES))

# What the tests need too (CI, a fresh Debian 12 machine, as root): the desktop harnesses
# (X11: Xvfb, tray host, virtual microphone, ...; Wayland: sway, wtype, wl-clipboard, foot,
# grim, ...) install their own packages.
test-system-deps:
	@if [ "$$(id -u)" = 0 ] && [ -f $(HARNESS)/desktop_session.sh ] && \
	   ! command -v Xvfb >/dev/null 2>&1; then \
	    echo "make: installing the desktop harness packages ($(HARNESS)/desktop_session.sh install)"; \
	    bash $(HARNESS)/desktop_session.sh install; \
	fi
	@if [ "$$(id -u)" = 0 ] && [ -f $(HARNESS)/wayland/wayland_session.sh ] && \
	   ! { command -v sway && command -v wtype && command -v foot; } >/dev/null 2>&1; then \
	    echo "make: installing the Wayland harness packages ($(HARNESS)/wayland/wayland_session.sh install)"; \
	    bash $(HARNESS)/wayland/wayland_session.sh install; \
	fi
	$(call apt_install,$(TEST_DEB_PACKAGES))

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy dictation

typecheck: install-test
	$(BIN)/mypy dictation

# pytest exits 5 when it collected no tests: that is a failure here.
# Extra pytest arguments: make pytest PYTEST_ARGS='-k catalog'
pytest: install-test
	@rc=0; $(BIN)/python -m pytest -q $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

test: test-system-deps
	$(MAKE) lint
	$(MAKE) pytest

bench: install
	$(BIN)/dictation bench --set $(BENCH_SET)
	$(BIN)/dictation bench --set $(BENCH_SET) --stream

clean:
	rm -rf build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
