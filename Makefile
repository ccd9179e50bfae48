# Homelab services VM: the user's entry point. Every target is a thin call of orchestrator.py.
# Run `make` or `make help` for the list. Every target takes ENV_FILE=path (default ./.env).

SHELL := /bin/bash
.DEFAULT_GOAL := help

ENV_FILE ?= ./.env
# VENV_DIR comes from the .env file when it is set there, else ./.venv next to this Makefile.
VENV_DIR ?= $(or $(shell sed -n 's/^[[:space:]]*VENV_DIR[[:space:]]*=[[:space:]]*["'\'']\{0,1\}\([^"'\''[:space:]]*\).*/\1/p' $(ENV_FILE) 2>/dev/null | tail -n1),$(CURDIR)/.venv)
PYTHON := $(VENV_DIR)/bin/python
# Root runs the CLI directly; anyone else goes through sudo (not every machine has sudo).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
DRY_RUN ?=
ORCH := $(SUDO) $(PYTHON) $(CURDIR)/orchestrator.py --env-file $(ENV_FILE) $(if $(DRY_RUN),--dry-run) $(V)

# Apt packages: ZFS tools (production: zfsutils-linux; the lab uses zfs-fuse), borg, docker.
ZFS_PACKAGE ?= zfsutils-linux
APT_PACKAGES ?= $(ZFS_PACKAGE) borgbackup docker.io docker-compose python3-venv

# The interpreter borg runs on (its FUSE bindings must import there): Debian's python3.
BORG_PYTHON ?= /usr/bin/python3
# Tests use their own virtualenv, independent of any .env.
TEST_VENV := $(CURDIR)/.venv
VM_CACHE ?= /var/tmp/orchestrator-vm
# The VM lab's Debian release: trixie (13, the main target) or bookworm (12, `make test-vm VM_SUITE=bookworm`).
VM_SUITE ?= trixie
PYTEST_ARGS ?=

.PHONY: help install venv config-check config-show doctor test test-unit test-v1 test-vm vm-image lab-up lab-down lint env-example

help: ## List every target with one line each
	@echo "Usage: make TARGET [ENV_FILE=./.env] [SERVICE_NAME=...] [DRY_RUN=1] [V=-v]"
	@echo
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-22s %s\n", $$1, $$2}'

# --- setup -----------------------------------------------------------------------------------

install: ## Install apt packages (zfs, borg, docker), create VENV_DIR, pip install (idempotent)
	@missing=""; for bin in zfs borg docker python3; do command -v $$bin >/dev/null || missing="$$missing $$bin"; done; \
	if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then missing="$$missing compose"; fi; \
	if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then missing="$$missing venv"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages (missing:$$missing): $(APT_PACKAGES); a few minutes (OpenZFS is compiled)"; \
	  log=$$(mktemp /tmp/orchestrator-install-apt.XXXXXX.log); \
	  if { $(SUDO) apt-get update -qq && \
	       cli=$$(apt-cache show --no-all-versions docker-cli >/dev/null 2>&1 && echo docker-cli || true) && \
	       $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) $$cli; } >$$log 2>&1; then \
	    echo "apt packages: installed (apt's and DKMS's output: $$log)"; \
	  else tail -n 30 $$log; echo "install: apt-get failed; its whole output: $$log"; exit 1; fi; \
	else echo "apt packages: all present"; fi
	@# borg mount (make mount) needs borg's FUSE bindings; Debian's borgbackup only recommends them
	@if ! $(BORG_PYTHON) -c 'import llfuse' >/dev/null 2>&1 && ! $(BORG_PYTHON) -c 'import pyfuse3' >/dev/null 2>&1; then \
	  pkg=$$(apt-cache show --no-all-versions python3-llfuse >/dev/null 2>&1 && echo python3-llfuse || echo python3-pyfuse3); \
	  echo "installing $$pkg (borg's FUSE bindings, for make mount)"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$pkg >/dev/null 2>&1 || \
	    echo "warning: could not install $$pkg: make mount will not work until it is (make doctor checks it)"; \
	fi
	@$(MAKE) --no-print-directory venv
	@chmod +x orchestrator.py tests/lab/lab.sh
	@echo "install: done. Next: cp .env.example .env && chmod 600 .env, edit it, then 'make config-check'."

venv: ## Create VENV_DIR and install requirements.txt into it
	@[ -x $(PYTHON) ] || python3 -m venv $(VENV_DIR)
	@$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements.txt
	@echo "venv: $(VENV_DIR) ready"

config-check: ## Validate ENV_FILE and list every problem at once
	$(ORCH) config check

config-show: ## Show every setting with secrets masked (DOC=1 adds each one's description and default)
	$(ORCH) config show $(if $(DOC),--doc)

doctor: ## Audit the host against the design, read-only: one line per check (ok/warn/fail) with its fix; exit 1 on a fail [JSON=1]
	$(ORCH) doctor $(if $(JSON),--json)

# --- storage (ZFS) ---------------------------------------------------------------------------
.PHONY: setup-pool attach-mirror setup-storage snapshot-all snapshot-one list-snapshots-all destroy-snapshot

# $(call require,VAR,example): stop with a clear message when a make variable is missing.
require = $(if $(strip $($(1))),,$(error $(1) is required, e.g. make $@ $(1)=$(2)))

setup-pool: ## Create the data pool as a mirror: DISKS="/dev/disk/by-id/a /dev/disk/by-id/b" (plan, then asks; YES=1 skips) [FORCE=1] [MOUNTPOINT=]
	$(call require,DISKS,"/dev/disk/by-id/ata-A /dev/disk/by-id/ata-B")
	$(ORCH) setup-pool $(if $(YES),--yes) $(if $(FORCE),--force) $(if $(MOUNTPOINT),--mountpoint $(MOUNTPOINT)) $(DISKS)

attach-mirror: ## Turn the one-disk pool into a mirror: DISK=/dev/disk/by-id/b (plan, then asks; YES=1 skips) [FORCE=1]
	$(call require,DISK,/dev/disk/by-id/ata-B)
	$(ORCH) attach-mirror $(if $(YES),--yes) $(if $(FORCE),--force) $(DISK)

setup-storage: ## Datasets, volume dirs + owners, userns-remap user, subuid/subgid, daemon.json; imports a pool found on the disks, keeping its datasets (safe to repeat; FIX_OWNERSHIP=1) [FORCE_IMPORT=1]
	$(ORCH) setup-storage $(if $(FIX_OWNERSHIP),--fix-ownership) $(if $(FORCE_IMPORT),--force-import)

snapshot-all: ## Snapshot every service dataset atomically: SNAPSHOT_NAME=name
	$(call require,SNAPSHOT_NAME,before-upgrade)
	$(ORCH) snapshot create $(SNAPSHOT_NAME)

snapshot-one: ## Snapshot one service's dataset: SERVICE_NAME=git SNAPSHOT_NAME=name
	$(call require,SERVICE_NAME,git)
	$(call require,SNAPSHOT_NAME,before-upgrade)
	$(ORCH) snapshot create --service $(SERVICE_NAME) $(SNAPSHOT_NAME)

list-snapshots-all: ## List the snapshots of every service dataset
	$(ORCH) snapshot list

destroy-snapshot: ## Destroy a snapshot (asks; YES=1 skips): SNAPSHOT_NAME=name [SERVICE_NAME=git]
	$(call require,SNAPSHOT_NAME,before-upgrade)
	$(ORCH) snapshot destroy $(if $(SERVICE_NAME),--service $(SERVICE_NAME)) $(if $(YES),--yes) $(SNAPSHOT_NAME)

# --- stacks (docker compose) -----------------------------------------------------------------
.PHONY: docker-up docker-down docker-stop docker-start docker-pull status status-page check-stacks adopt install-autostart uninstall-autostart

docker-up: ## Create and start stacks: external networks, hub first, rest in parallel, wait healthy [SERVICE_NAME=]
	$(ORCH) docker-up $(SERVICE_NAME)

docker-down: ## Stop and remove stacks' containers, hub last (data on ZFS is kept) [SERVICE_NAME=]
	$(ORCH) docker-down $(SERVICE_NAME)

docker-stop: ## Stop stacks in parallel, hub last [SERVICE_NAME=]
	$(ORCH) docker-stop $(SERVICE_NAME)

docker-start: ## Start stacks, hub first [SERVICE_NAME=]
	$(ORCH) docker-start $(SERVICE_NAME)

docker-pull: ## Pull the stacks' images [SERVICE_NAME=]
	$(ORCH) docker-pull $(SERVICE_NAME)

status: ## Per service: stack, dataset, coverage, last backup (STALE), archives (HELD), drill, repo check, update, verdict [SERVICE_NAME=] [JSON=1]
	$(ORCH) status $(if $(JSON),--json) $(SERVICE_NAME)

status-page: ## Write the static HTML status page now (each run writes STATUS_PAGE_DIR/index.html itself): HTML=file [SERVICE_NAME=]
	$(call require,HTML,/srv/status-page/index.html)
	$(ORCH) status --html $(HTML) $(SERVICE_NAME)

check-stacks: ## Hub-and-spoke rules and where every mount keeps its data; each violation with its file and fix
	$(ORCH) check-stacks

adopt: ## Bring a stack's uncovered data (docker volumes, ./binds) onto its dataset: SERVICE_NAME= [DRY_RUN=1] [YES=1] [REMOVE_OLD=1]
	$(call require,SERVICE_NAME,photo)
	$(ORCH) adopt $(if $(YES),--yes) $(if $(REMOVE_OLD),--remove-old) $(SERVICE_NAME)

install-autostart: ## systemd unit that runs docker-up after docker and ZFS mounts at boot
	$(ORCH) install-autostart

uninstall-autostart: ## Remove the autostart unit
	$(ORCH) uninstall-autostart

# --- image updates -------------------------------------------------------------------------
.PHONY: outdated update rollback

outdated: ## Which services' registries serve a newer image (read-only) [SERVICE_NAME=] [JSON=1]
	$(ORCH) outdated $(if $(JSON),--json) $(SERVICE_NAME)

update: ## Pull, snapshot, restart on new images, roll back image+data if unhealthy [SERVICE_NAME=] [YES=1]
	$(ORCH) update $(if $(YES),--yes) $(SERVICE_NAME)

rollback: ## Back to the last pre-update snapshot and its images: SERVICE_NAME= [SNAPSHOT_NAME=] [YES=1]
	$(call require,SERVICE_NAME,git)
	$(ORCH) rollback $(if $(YES),--yes) $(if $(SNAPSHOT_NAME),--snapshot $(SNAPSHOT_NAME)) $(SERVICE_NAME)

# --- backup (borg) ---------------------------------------------------------------------------
.PHONY: backup-all backup-one init-repos list-archives extract-archive check-repos release-prune authorized-keys prune-trusted forget-repo-cache restore restore-all versions restore-path mount umount snapshot-history drill install-cron uninstall-cron install-zedlet uninstall-zedlet

backup-all: ## The nightly cycle for every service: stop, snapshot, start, borg, prune (JSON=1 for JSON)
	$(ORCH) backup $(if $(JSON),--json)

backup-one: ## The cycle for one service: SERVICE_NAME=git
	$(call require,SERVICE_NAME,git)
	$(ORCH) backup $(if $(JSON),--json) $(SERVICE_NAME)

init-repos: ## Create missing borg repositories (repokey-blake2) and export their keys to borg_keys/
	$(ORCH) init-repos $(SERVICE_NAME)

list-archives: ## List a service's archives: SERVICE_NAME=git
	$(call require,SERVICE_NAME,git)
	$(ORCH) list-archives $(SERVICE_NAME)

extract-archive: ## Extract an archive to an empty dir: SERVICE_NAME= ARCHIVE_NAME= DESTINATION= [FORCE=1]
	$(call require,SERVICE_NAME,git)
	$(call require,ARCHIVE_NAME,git-2026-01-01T03:30:00Z)
	$(call require,DESTINATION,/tmp/restore-git)
	$(ORCH) extract-archive $(if $(FORCE),--force) $(SERVICE_NAME) $(ARCHIVE_NAME) $(DESTINATION)

check-repos: ## borg check every repository (REPOSITORY_ONLY=1: segments only, as CHECK_SCHEDULE runs; VERIFY_DATA=1 reads every chunk) [SERVICE_NAME=git]
	$(ORCH) check-repos $(if $(VERIFY_DATA),--verify-data) $(if $(REPOSITORY_ONLY),--repository-only) $(SERVICE_NAME)

release-prune: ## Let the next backup prune SERVICE_NAME= again after the prune guard held it (the change was meant)
	$(call require,SERVICE_NAME,git)
	$(ORCH) release-prune $(SERVICE_NAME)

authorized-keys: ## Print the backup server's authorized_keys lines: the VM's key append-only per repository [PUBLIC_KEY=vm.pub] [TRUSTED_KEY=full.pub] (docs/security.md)
	$(ORCH) authorized-keys $(if $(PUBLIC_KEY),--public-key "$(PUBLIC_KEY)") $(if $(TRUSTED_KEY),--trusted-key "$(TRUSTED_KEY)")

prune-trusted: ## On the trusted machine: prune + compact every repository with the full-access key (prune guard applies) [BORG_RSH="ssh -i ~/.ssh/borg_full"] [SERVICE_NAME=]
	$(ORCH) prune-trusted $(if $(BORG_RSH),--rsh "$(BORG_RSH)") $(SERVICE_NAME)

forget-repo-cache: ## After a repository was rolled back on the server: drop this machine's borg cache of it: SERVICE_NAME= (docs/security.md)
	$(call require,SERVICE_NAME,git)
	$(ORCH) forget-repo-cache $(SERVICE_NAME)

restore: ## Data + stack folder from an archive (safety snapshot, old folder kept): SERVICE_NAME= ARCHIVE_NAME= [ONLY=data|stack] [YES=1]
	$(call require,SERVICE_NAME,git)
	$(call require,ARCHIVE_NAME,git-2026-01-01T03:30:00Z)
	$(ORCH) restore $(if $(YES),--yes) $(if $(ONLY),--only $(ONLY)) $(SERVICE_NAME) $(ARCHIVE_NAME)

restore-all: ## Every service from its latest archive (data + stack folders), then docker-up: recovery on a new machine [YES=1]
	$(ORCH) restore-all $(if $(YES),--yes)

versions: ## Every version of one file or folder, local snapshots and archives in one timeline: SERVICE_NAME= FILE=photos/cat.jpg [JSON=1]
	$(call require,SERVICE_NAME,photo)
	$(call require,FILE,photos/cat.jpg)
	$(ORCH) versions $(if $(JSON),--json) $(SERVICE_NAME) "$(FILE)"

restore-path: ## One file or folder back, the service running: SERVICE_NAME= FILE= [WHEN=2026-12-01|name] [TO=dir] [STOP=1] [YES=1]
	$(call require,SERVICE_NAME,photo)
	$(call require,FILE,photos/cat.jpg)
	$(ORCH) restore-path $(if $(YES),--yes) $(if $(STOP),--stop) $(if $(WHEN),--when "$(WHEN)") $(if $(TO),--to "$(TO)") $(SERVICE_NAME) "$(FILE)"

mount: ## borg mount a service's repository (or ARCHIVE_NAME=) read-only at MOUNT_DIR/<service>: SERVICE_NAME= [ARCHIVE_NAME=]
	$(call require,SERVICE_NAME,photo)
	$(ORCH) mount $(SERVICE_NAME) $(ARCHIVE_NAME)

umount: ## Unmount what make mount mounted [SERVICE_NAME=] (all when none is named)
	$(ORCH) umount $(SERVICE_NAME)

snapshot-history: ## A crash-consistent history snapshot of every dataset now, nothing stopped (SNAPSHOT_SCHEDULE runs it)
	$(ORCH) snapshot-history

drill: ## Restore drill: extract latest archives to scratch, compare with their snapshots; BOOT=1 also boots each restored stack, isolated [SERVICE_NAME=] [JSON=1]
	$(ORCH) drill $(if $(JSON),--json) $(if $(BOOT),--boot) $(SERVICE_NAME)

install-cron: ## Nightly backup-all, weekly drill (DRILL_SCHEDULE), monthly repo check (CHECK_SCHEDULE) from /etc/cron.d, rotated log [CRON_SCHEDULE="30 3 * * *"]
	$(ORCH) install-cron $(if $(CRON_SCHEDULE),--schedule "$(CRON_SCHEDULE)")

uninstall-cron: ## Remove the nightly cron entry and its logrotate rule
	$(ORCH) uninstall-cron

install-zedlet: ## ZFS's event daemon (zfs-zed) tells NOTIFY_URLS when a pool disk faults or reports errors
	$(ORCH) install-zedlet

uninstall-zedlet: ## Remove the zedlet (only the file this tool wrote)
	$(ORCH) uninstall-zedlet

# --- fleet: several hosts with Ansible (docs/fleet.md) ------------------------------------
.PHONY: ansible-venv fleet-apply fleet-status fleet-backup cloud-init-user-data

ANSIBLE_VENV ?= $(CURDIR)/.venv-ansible
ANSIBLE_DIR := $(CURDIR)/deploy/ansible
INVENTORY ?= $(ANSIBLE_DIR)/inventory
ANSIBLE_ARGS ?=
FLEET_PARALLEL ?= 2
# ansible.cfg next to the playbooks, whatever the caller's directory
ANSIBLE_RUN = cd $(ANSIBLE_DIR) && ANSIBLE_CONFIG=$(ANSIBLE_DIR)/ansible.cfg $(ANSIBLE_VENV)/bin/

$(ANSIBLE_VENV)/.installed: $(ANSIBLE_DIR)/requirements.txt
	@[ -x $(ANSIBLE_VENV)/bin/python ] || python3 -m venv $(ANSIBLE_VENV)
	@$(ANSIBLE_VENV)/bin/python -m pip install -q --disable-pip-version-check -r $(ANSIBLE_DIR)/requirements.txt
	@touch $@

ansible-venv: $(ANSIBLE_VENV)/.installed ## The controller's ansible-core + collections + ansible-lint, in ANSIBLE_VENV (PyPI only)
	@$(ANSIBLE_VENV)/bin/ansible --version | head -1

fleet-apply: $(ANSIBLE_VENV)/.installed ## Make every host of INVENTORY a services VM (idempotent) [LIMIT=host] [ANSIBLE_ARGS="--check --diff"]
	$(ANSIBLE_RUN)ansible-playbook -i $(abspath $(INVENTORY)) site.yml $(if $(LIMIT),--limit $(LIMIT)) $(ANSIBLE_ARGS)

fleet-status: $(ANSIBLE_VENV)/.installed ## Per host: stacks running, oldest backup, stale services, last drill (each host's status --json)
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	($(ANSIBLE_RUN)ansible-playbook -i $(abspath $(INVENTORY)) fleet-status.yml -e fleet_results_dir=$$out $(if $(LIMIT),--limit $(LIMIT)) $(ANSIBLE_ARGS) >$$out.log 2>&1 || { cat $$out.log; }) ; \
	rm -f $$out.log; python3 -m management.views.fleet status $$out

fleet-backup: $(ANSIBLE_VENV)/.installed ## Each host's backup now, FLEET_PARALLEL hosts at a time; a failing host is reported, the others continue
	@out=$$(mktemp -d) && trap 'rm -rf "$$out"' EXIT && \
	($(ANSIBLE_RUN)ansible-playbook -i $(abspath $(INVENTORY)) fleet-backup.yml --forks $(FLEET_PARALLEL) -e fleet_results_dir=$$out $(if $(LIMIT),--limit $(LIMIT)) $(ANSIBLE_ARGS) >$$out.log 2>&1 || { cat $$out.log; }) ; \
	rm -f $$out.log; python3 -m management.views.fleet backup $$out

cloud-init-user-data: ## Print cloud-init user-data for a new VM: ADMIN_USER=runner SSH_PUBLIC_KEY=~/.ssh/id_ed25519.pub [VM_HOSTNAME=atlas]
	$(call require,SSH_PUBLIC_KEY,~/.ssh/id_ed25519.pub)
	@ADMIN_USER=$(or $(ADMIN_USER),runner) VM_HOSTNAME=$(or $(VM_HOSTNAME),services) KEY_FILE=$(SSH_PUBLIC_KEY) python3 -c \
	  'import os, string, sys; key = open(os.path.expanduser(os.environ["KEY_FILE"])).read().strip(); \
	   sys.stdout.write(string.Template(open("deploy/cloud-init/user-data").read()).substitute( \
	   ADMIN_USER=os.environ["ADMIN_USER"], HOSTNAME=os.environ["VM_HOSTNAME"], SSH_PUBLIC_KEY=key))'

# --- benchmark -------------------------------------------------------------------------------
.PHONY: bench bench-restore bench-guard bench-scale bench-scale-vm
BENCH_ARGS ?=
RESTORE_PATH_ARGS ?=

bench: $(TEST_VENV)/.dev-installed lab-up ## Downtime and nightly cost: this tool vs a naive script vs borgmatic, markdown table (root; BENCH_ARGS="--runs 1")
	$(TEST_VENV)/bin/python bench/bench.py $(BENCH_ARGS)

bench-restore: $(TEST_VENV)/.dev-installed lab-up ## One file back (restore-path vs borg extract PATH alone; RESTORE_PATH_ARGS="--files 20000 --size-mb 2048"), then seconds per restore level for PostgreSQL, Fossil/SQLite, Redis (root; BENCH_ARGS="--pg-scale 10")
	$(TEST_VENV)/bin/python bench/restore_path.py $(RESTORE_PATH_ARGS)
	$(TEST_VENV)/bin/python bench/restore_levels.py $(BENCH_ARGS)

bench-guard: $(TEST_VENV)/.dev-installed lab-up ## The mass-change guard's cost against the night it rides on, 1% and every file rewritten (root; GUARD_ARGS="--files 20000 --size-mb 400 --runs 3")
	$(TEST_VENV)/bin/python bench/guard_cost.py $(GUARD_ARGS)

bench-scale: $(TEST_VENV)/.dev-installed lab-up ## Cost as files (2k/20k/200k) and stacks (1/10/100) grow, beside borg, compose and zfs alone in the same run (root; BENCH_ARGS="--only stacks --stacks 1,10")
	$(TEST_VENV)/bin/python bench/scale.py $(BENCH_ARGS)

bench-scale-vm: $(TEST_VENV)/.dev-installed ## The quiet night as files grow on OpenZFS, in the VM lab's Debian 13 guest (a reduced size; root, qemu; BENCH_ARGS="--files 1000,20000")
	VM_CACHE=$(VM_CACHE) VM_SUITE=$(VM_SUITE) $(TEST_VENV)/bin/python bench/scale_vm.py $(BENCH_ARGS)

# --- chaos -----------------------------------------------------------------------------------
.PHONY: chaos
NIGHTS ?= 30
SEED ?= 1
MINUTES ?=

chaos: $(TEST_VENV)/.dev-installed lab-up ## Randomized faults on the lab: NIGHTS steps, each an operation with 0-2 faults at random moments, invariants after every step; a violation prints its replay (root; NIGHTS=300 SEED=7 [MINUTES=60]) (docs/reliability.md)
	$(TEST_VENV)/bin/python -m tests.chaos --nights $(NIGHTS) --seed $(SEED) $(if $(MINUTES),--minutes $(MINUTES))

# --- demo ------------------------------------------------------------------------------------
.PHONY: demo demo-clean

demo: $(TEST_VENV)/.dev-installed ## The main job on a sandbox: lab, hub + 2 spokes, backup-all, restore, compare (root)
	PYTHON=$(TEST_VENV)/bin/python bash demo/demo.sh

demo-clean: $(TEST_VENV)/.dev-installed ## Remove the demo sandbox (the lab stays; make lab-down removes it)
	PYTHON=$(TEST_VENV)/bin/python bash demo/demo.sh clean

# --- development -----------------------------------------------------------------------------

$(TEST_VENV)/.dev-installed: requirements.txt requirements-dev.txt
	@[ -x $(TEST_VENV)/bin/python ] || python3 -m venv $(TEST_VENV)
	@$(TEST_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

lab-up: ## Install and start the test lab (zfs-fuse pool, dockerd with userns-remap, sshd, images)
	bash tests/lab/lab.sh up

lab-down: ## Tear down what the test lab created
	bash tests/lab/lab.sh down

test: $(TEST_VENV)/.dev-installed lab-up ## The whole suite: unit + lab tests on compose v2, the compose v1 contract, and alongside them the VM lab, then the fleet
	@# Two chains run side by side. The host chain: every test that uses the host lab's
	@# dockerd, zfs-fuse and sshd (compose v2, then the compose v1 contract), one after another.
	@# The other chain shares nothing with the host lab but the CPUs: the VM lab (a qemu guest:
	@# its image build, then the boots; at nice 5: at nice 19 the host pass gained little, being
	@# mostly waits, and the guest under TCG took 3000 s instead of about 2100), then the fleet
	@# (two systemd-nspawn machines and Ansible, marker fleet), which fills the CPU the guest
	@# leaves when it ends before the host chain; it runs in a mount namespace without the
	@# host lab's mounts (tests/lab/apart.sh), so its machines pin no dataset the host lab
	@# destroys meanwhile. Its output follows the host chain's.
	@# The VM lab runs one boot scenario, rotating (chosen by the commit; `make test-vm` runs
	@# all) on one Debian release, VM_SUITE (trixie: one image to build on a cold machine;
	@# bookworm on demand, `make test-vm VM_SUITE=bookworm`). Compose v1 runs its contract
	@# suite (`make test-v1`: every compose test). Every part runs; the target fails when any
	@# part failed.
	@mkdir -p $(VM_CACHE); rm -f $(VM_CACHE)/test-vm.rc $(VM_CACHE)/test-fleet.rc; start=$$(date +%s); \
	( VM_CACHE=$(VM_CACHE) VM_SUITE=$(VM_SUITE) VM_SCENARIOS=rotate nice -n 5 $(TEST_VENV)/bin/python -m pytest -m vm $(PYTEST_ARGS) \
	    > $(VM_CACHE)/test-vm.log 2>&1; echo $$? > $(VM_CACHE)/test-vm.rc; \
	  echo "$$(( $$(date +%s) - start ))" > $(VM_CACHE)/test-vm.seconds; \
	  tests/lab/apart.sh $(TEST_VENV)/bin/python -m pytest -m fleet $(PYTEST_ARGS) > $(VM_CACHE)/test-fleet.log 2>&1; \
	  echo $$? > $(VM_CACHE)/test-fleet.rc; echo "$$(( $$(date +%s) - start ))" > $(VM_CACHE)/test-fleet.seconds ) & side=$$!; \
	echo "test: the VM lab, then the fleet, run alongside (logs: $(VM_CACHE)/test-vm.log, test-fleet.log)"; \
	$(TEST_VENV)/bin/python -m pytest -m "not vm and not fleet" $(PYTEST_ARGS); v2=$$?; t2=$$(date +%s); \
	LAB_COMPOSE=v1 $(TEST_VENV)/bin/python -m pytest -m v1_contract $(PYTEST_ARGS); v1=$$?; t1=$$(date +%s); \
	echo "test: waiting for the VM lab and the fleet"; wait $$side; \
	echo "==================== the VM lab (tests/vm, marker vm) ===================="; \
	cat $(VM_CACHE)/test-vm.log; vmrc=$$(cat $(VM_CACHE)/test-vm.rc 2>/dev/null || echo 1); \
	echo "==================== the fleet (tests/lab/test_fleet_lab.py, marker fleet) ===================="; \
	cat $(VM_CACHE)/test-fleet.log; fleetrc=$$(cat $(VM_CACHE)/test-fleet.rc 2>/dev/null || echo 1); \
	echo "test: parts (s): compose v2 pass $$(( t2 - start )), compose v1 contract $$(( t1 - t2 )), VM lab $$(cat $(VM_CACHE)/test-vm.seconds 2>/dev/null || echo '?') then the fleet to $$(cat $(VM_CACHE)/test-fleet.seconds 2>/dev/null || echo '?') (alongside), all $$(( $$(date +%s) - start ))"; \
	echo "test: exit codes: compose v2 pass $$v2, compose v1 contract $$v1, VM lab $$vmrc, fleet $$fleetrc"; \
	[ $$v2 = 0 ] && [ $$v1 = 0 ] && [ $$vmrc = 0 ] && [ $$fleetrc = 0 ]

test-v1: $(TEST_VENV)/.dev-installed lab-up ## Every compose-marked test again on compose v1 (docker-compose 1.29; make test runs its contract only)
	LAB_COMPOSE=v1 $(TEST_VENV)/bin/python -m pytest -m compose $(PYTEST_ARGS)

vm-image: lab-up ## Build (or reuse) the VM lab's image: Debian VM_SUITE (trixie; or bookworm), systemd, docker, OpenZFS via DKMS (docs/vm-lab.md)
	VM_CACHE=$(VM_CACHE) VM_SUITE=$(VM_SUITE) bash tests/vm/build-image.sh

test-vm: $(TEST_VENV)/.dev-installed lab-up ## Only the VM lab, every boot scenario: a booted Debian (VM_SUITE=trixie|bookworm) with OpenZFS; setup, reboot, power cuts, late disk (docs/vm-lab.md)
	VM_CACHE=$(VM_CACHE) VM_SUITE=$(VM_SUITE) VM_SCENARIOS=all $(TEST_VENV)/bin/python -m pytest -m vm $(PYTEST_ARGS)

test-unit: $(TEST_VENV)/.dev-installed ## Run only the unit tests (no outside tools needed)
	$(TEST_VENV)/bin/python -m pytest -m "not lab" $(PYTEST_ARGS)

lint: $(TEST_VENV)/.dev-installed ## ruff check
	$(TEST_VENV)/bin/ruff check .

env-example: $(TEST_VENV)/.dev-installed ## Write .env.example from the settings table (SETTINGS in management/config/table.py)
	$(TEST_VENV)/bin/python -c 'from pathlib import Path; from management import config, state; \
	state.write_atomic(Path(".env.example"), config.render_env_example())'
