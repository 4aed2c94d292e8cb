# The two set-up commands are `make demo` and `make test`; both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist). Three on a 2-core machine: much of a HIL test is waiting on a
# board's VM or on real time, so two workers kept the cores a third idle (the suite took
# 10 min 22 s with two, 8 min 17 s with three, measured here). TEST_WORKERS=0 runs in one
# process. The serial tray's run keeps two: its 4 boards are shared by lock.
TEST_WORKERS ?= 3
TRAY_WORKERS ?= 2

.PHONY: demo test bench nightly clean vectors frozen-vm catalog wheel

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m edgekit.demo

test: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal --junitxml=out/junit.xml
	# The HIL suite once more, as on a bench: 4 emulated boards reached only through their
	# serial ports and the rig (docs/hil.md), in a random order.
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m edgekit.hil.emu_tray --boards 4 -- -n $(TRAY_WORKERS) --junitxml=out/junit-serial.xml

bench: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python bench/run_all.py

nightly: $(STAMP)
	PATH=$(CURDIR)/$(BIN):$$PATH EDGEKIT_SLOW=1 EDGEKIT_NIGHTLY=1 $(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal --junitxml=out/junit-nightly.xml

# The board-accurate VM: MicroPython's unix port built 32-bit with the firmware frozen
# (edgekit.frozen.unixvm; ~20 s from scratch on 2 cores). MICROPYTHON_SRC names the source
# folder (default: ../shared/micropython's archive unpacked into build/micropython). Without
# the i686 toolchain it prints the one apt command that installs it.
frozen-vm: $(STAMP)
	$(BIN)/python -m edgekit.frozen.unixvm

vectors: $(STAMP)
	$(BIN)/python -m edgekit.protocol.vectors protocol/vectors

# After an edit to protocol/catalog.py: the host's written-out copy (a test fails until it is current)
catalog: $(STAMP)
	$(BIN)/python -m edgekit.protocol.catalog_gen

# The installable package (firmware, boards and protocol inside): dist/edgekit-*.whl.
# setuptools reuses build/lib: cleared first, so a module renamed since the last build is not shipped twice.
wheel: $(STAMP)
	rm -rf build/lib build/bdist.*
	$(BIN)/python -m pip wheel --no-deps -w dist .

clean:
	rm -rf $(VENV) out build dist *.egg-info host_tools/*.egg-info
