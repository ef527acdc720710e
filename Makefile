# WeChat QR code operator. `make help` lists the targets.

IMG ?= wechat-qrcode-operator:latest
# Where built binaries go.
LOCALBIN ?= $(CURDIR)/bin
GO ?= go
CONTROLLER_GEN ?= $(GO) tool controller-gen
KUSTOMIZE ?= $(GO) tool kustomize
# The linters, pinned in hack/tools/go.mod, a module of its own so that their dependencies stay out
# of go.mod. Not golangci-lint: its cold build costs 8.7 CPU-minutes, over 4 minutes of a 2-core CI
# run; these five together 3.4 CPU-minutes (measured with an empty build cache).
LINT_TOOL ?= $(GO) tool -modfile=$(CURDIR)/hack/tools/go.mod
# staticcheck with go vet's analyzers (hack/tools/lint). It is a package of hack/tools' own module,
# which `go tool -modfile` cannot find from here (the module root stays this directory), so lint
# builds it into bin/ first (relinked only when it changed).
LINT = $(LOCALBIN)/lint
# The Go files lint reads: what git tracks (not caches, builds or node_modules), but generated code.
LINT_GO_FILES = $(shell git ls-files '*.go' | grep -v zz_generated)
# Extra flags for `go test`, e.g. TESTFLAGS='-run TestCRD -v'.
TESTFLAGS ?=
# Packages `make test` runs.
TESTPKGS ?= ./...

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

# The Helm chart; `make manifests` copies the CRDs and the generated RBAC rules into it. Its tests
# are a Go module of their own, since Helm pins newer Kubernetes libraries than the operator.
CHART ?= dist/chart
HELM_TEST = test/helm

.PHONY: manifests
manifests: ## Generate the CRDs and the RBAC roles from the controller-gen markers (into config/ and the Helm chart).
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths=./controllers/... output:rbac:artifacts:config=config/rbac/manager
	$(CONTROLLER_GEN) rbac:roleName=callback-role paths=./internal/callback/... output:rbac:artifacts:config=config/rbac/callback
	rm -f $(CHART)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/manager/role.yaml $(CHART)/files/manager-role.yaml
	cp config/rbac/callback/role.yaml $(CHART)/files/callback-role.yaml

.PHONY: generate
generate: ## Generate the DeepCopy methods from the controller-gen markers.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths=./api/...

.PHONY: verify-generated
verify-generated: ## Fail when generated files are stale (run `make manifests generate` to fix).
	hack/verify-generated.sh

.PHONY: verify-large-files
verify-large-files: ## Fail when git tracks a file over 1 MiB not listed in hack/large-files.txt (a build output committed by mistake).
	hack/verify-large-files.sh

.PHONY: fmt
fmt: ## Run go fmt.
	$(GO) fmt ./...

.PHONY: vet
vet: ## Run go vet (the chart's test module and the release builder included).
	$(GO) vet ./...
	cd $(HELM_TEST) && $(GO) vet ./...
	cd hack/release && $(GO) vet ./...

# hack/tools/lint runs go vet's analyzers beside staticcheck's in one process, with the facts of every
# dependency computed once (go vet runs a process per dependency: docs/ci.md). The chart's tests are
# linted by it too: with the operator's facts in the staticcheck cache that costs 4 CPU s, where
# `go vet` of that module alone costs 144. So is the release builder (hack/release): 44 CPU s cold,
# 2 warm.
.PHONY: lint
lint: ## Run the pinned linters (hack/tools/go.mod): staticcheck with go vet's analyzers (staticcheck.conf; the chart's tests and hack/release too), errcheck, ineffassign, goimports, misspell.
	$(GO) build -C hack/tools -o $(LINT) ./lint
	$(LINT) ./...
	cd $(HELM_TEST) && $(LINT) ./...
	cd hack/release && $(LINT) ./...
	$(LINT_TOOL) errcheck -exclude hack/errcheck-exclude.txt ./...
	$(LINT_TOOL) ineffassign ./...
	@unformatted="$$($(LINT_TOOL) goimports -l -local github.com/qrcode-operator/wechat-qrcode-operator $(LINT_GO_FILES))"; \
	  if [ -n "$$unformatted" ]; then echo "not goimports-formatted (goimports -w -local github.com/qrcode-operator/wechat-qrcode-operator):"; echo "$$unformatted"; exit 1; fi
	$(LINT_TOOL) misspell -error $(LINT_GO_FILES) $(shell git ls-files '*.md')

.PHONY: controlplane
controlplane: ## Build (first time only) etcd, kube-apiserver and kubectl from source and print their directory.
	@hack/controlplane.sh

# Where `make dev` keeps its kubeconfigs, binaries, logs and state (gitignored).
DEV_DIR ?= .dev
# `make dev`: extra flags of `dev up`: --any-ports (free ports instead of 6443, 8080-8081 and
# 8089-8094), --no-samples.
DEV_ARGS ?=
# `make scan`: the code to scan, its namespace and how many scans.
NAME ?=
NAMESPACE ?= default
COUNT ?= 1
# `make message`: the text a follower sends.
TEXT ?= hello

# Builds hack/dev into bin/, saying every 100 packages how far a first build (which compiles the
# Kubernetes client libraries) has got; compiler errors pass through whole.
define build-dev
@$(GO) build -v -o $(LOCALBIN)/dev ./hack/dev 2>&1 | awk '/[ :]/ {print; next} {n++} n % 100 == 0 {print "build    | hack/dev: " n " packages compiled"; fflush()}'
endef

.PHONY: dev
dev: ## Run the operator on a local API server with a fake WeChat; Ctrl-C stops it. Other ports: DEV_ARGS=--any-ports. A real account: WECHAT_APP_ID=... WECHAT_APP_SECRET=... WECHAT_TOKEN=... [WECHAT_ENCODING_AES_KEY=...].
	$(build-dev)
	@GO="$(GO)" $(LOCALBIN)/dev up --dir $(DEV_DIR) $(DEV_ARGS)

.PHONY: scan
scan: ## Simulate scans of a code of the running `make dev` (on whatever ports it runs): make scan NAME=spring-sale-poster [NAMESPACE=default] [COUNT=3].
	$(build-dev)
	@$(LOCALBIN)/dev scan --dir $(DEV_DIR) --namespace '$(NAMESPACE)' --count $(COUNT) '$(NAME)'

.PHONY: outage
outage: ## Show durable delivery on the running `make dev`: the demo sink down, scans counted meanwhile, the callback server killed -9 and started again, the events delivered by it: make outage NAME=spring-sale-poster [NAMESPACE=default] [COUNT=3].
	$(build-dev)
	@$(LOCALBIN)/dev outage --dir $(DEV_DIR) --namespace '$(NAMESPACE)' --count $(COUNT) '$(NAME)'

.PHONY: message
message: ## Send a follower's text message to the running `make dev`'s account and print the demo application's reply: make message TEXT=hello.
	$(build-dev)
	@$(LOCALBIN)/dev message --dir $(DEV_DIR) '$(subst ','\'',$(TEXT))'

# How long `make test` runs each fuzz target beyond its seed corpus.
FUZZTIME ?= 5s
# `make test` fuzzes no package whose tests import these (hack/fuzz-short.sh says why: fuzzing one
# compiles the Kubernetes client again, instrumented); `go test` replays their seed corpora, and
# `make fuzz` fuzzes them.
FUZZ_SKIP_DEPS = sigs.k8s.io/controller-runtime k8s.io/client-go

# The release test (test-release) builds the manager and the callback server as a release does:
# 12-14 CPU s with a warm build cache (17-28 s wall on a 2-core machine shared four ways). Cold it costs
# far more: static (CGO_ENABLED=0) and -trimpath, those builds share no compiled package with the
# tests' and compile the Kubernetes client stack again (6 CPU-minutes measured for the manager,
# callback and plugin together).
#
# `make test` has just run go vet's analyzers (all of them, in lint) on both modules, so its
# `go test` runs skip the subset of vet that `go test` runs by default: that subset would analyze
# every dependency again (about 1,300 packages), a process each. It links the test binaries
# without DWARF (-ldflags=-w): a debugger is not what they are for, stack traces keep their
# file:line, and linking costs a third less CPU (controllers' test binary: 8.5 CPU s, 6.2 with -w;
# 27 test binaries and the fuzz targets).
TEST_GOFLAGS = -vet=off -ldflags=-w

.PHONY: test
test: verify-large-files verify-generated lint ## Lint, then run every test against a real kube-apiserver + etcd built from source, the chart's tests, the release's (test-release), then a short fuzz run of the packages without the Kubernetes client.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) test $(TEST_GOFLAGS) $(TESTFLAGS) $(TESTPKGS)
	$(MAKE) -s test-helm TESTFLAGS="$(TEST_GOFLAGS) $(TESTFLAGS)"
	$(MAKE) -s test-release TESTFLAGS="$(TEST_GOFLAGS) $(TESTFLAGS)"
	FUZZTIME=$(FUZZTIME) FUZZFLAGS="$(TEST_GOFLAGS)" FUZZSKIPDEPS="$(FUZZ_SKIP_DEPS)" hack/fuzz-short.sh

.PHONY: test-helm
test-helm: ## Test the Helm chart: helm lint, a server-side dry run of all it installs, and that it matches config/.
	cd $(HELM_TEST) && KUBEBUILDER_ASSETS="$$(../../hack/controlplane.sh)" $(GO) test $(TESTFLAGS) ./...

.PHONY: helm-lint
helm-lint: ## Run helm lint on the chart (Helm's Go package; no helm binary needed).
	cd $(HELM_TEST) && $(GO) test -run 'TestLint$$' -v ./...

.PHONY: fuzz
fuzz: ## Run every fuzz target, the callback server's included, for longer (FUZZTIME=10m make fuzz).
	FUZZTIME=$(FUZZTIME) hack/fuzz-short.sh

# `make bench`: the results file, and extra flags of test/bench (`go run ./test/bench -help`),
# e.g. BENCHFLAGS='-n 10000' for the issuance benchmark at 10,000 codes.
BENCH_OUT ?= bench/results/latest.md
BENCHFLAGS ?=

.PHONY: bench
bench: ## Benchmarks (issuance, renewal storm, callback, peer, gateway, hotfault) on a real API server with the fake WeChat; table and JSON lines into BENCH_OUT.
	mkdir -p $(dir $(BENCH_OUT))
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) run ./test/bench -out $(BENCH_OUT) $(BENCHFLAGS)

# `make bench-peer`: only the push CPU comparison with silenceper/wechat, into its own file.
PEER_OUT ?= bench/results/peer.md

.PHONY: bench-peer
bench-peer: ## Only the push CPU per event of the callback server beside silenceper/wechat (test/bench/peer) into PEER_OUT.
	mkdir -p $(dir $(PEER_OUT))
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) run ./test/bench -only peer -out $(PEER_OUT) $(BENCHFLAGS)

# `make bench-gateway`: only the push gateway (forwarding and sinks), into its own file.
GATEWAY_OUT ?= bench/results/gateway.md

.PHONY: bench-gateway
bench-gateway: ## Only the push gateway: forwarded pushes beside the application called directly, the hot load with and without a sink, in both orders (about 3 minutes), into GATEWAY_OUT.
	mkdir -p $(dir $(GATEWAY_OUT))
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) run ./test/bench -only gateway -out $(GATEWAY_OUT) $(BENCHFLAGS)

# `make bench-hotfault`: only the hot code under faults (late retries, a replica killed), into its own file.
HOTFAULT_OUT ?= bench/results/hotfault.md

.PHONY: bench-hotfault
bench-hotfault: ## Only the hot code under faults: 6,000 distinct scans/s of one code for 20 s to two callback replicas, re-sent 5, 10 and 15 s late as WeChat does, one replica killed with -9 halfway (about 2 minutes), into HOTFAULT_OUT.
	mkdir -p $(dir $(HOTFAULT_OUT))
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) run ./test/bench -only hotfault -out $(HOTFAULT_OUT) $(BENCHFLAGS)

# `make bench-soak`: only the soak, into its own file; not part of `make bench` (10 minutes).
SOAK_OUT ?= bench/results/soak.md
SOAK_TIME ?= 10m

.PHONY: bench-soak
bench-soak: ## Only the soak, not part of `make bench`: a mixed load over 1,000 codes for SOAK_TIME (10m) to two callback replicas and the manager with a sink; per minute the fold, RSS, API writes per scan and sink lag, the last minute beside the second (about SOAK_TIME + 2 minutes), into SOAK_OUT.
	mkdir -p $(dir $(SOAK_OUT))
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) run ./test/bench -only soak -soak-time $(SOAK_TIME) -out $(SOAK_OUT) $(BENCHFLAGS)

# `make bench-tagging`: only the tagging, into its own file; not part of `make bench` (500 s of load).
TAGGING_OUT ?= bench/results/tagging.md

.PHONY: bench-tagging
bench-tagging: ## Only the tagging, not part of `make bench`: 100,000 distinct scanners over 50 codes with 3 tags each at 200/s through a callback replica to the manager's tagging endpoint; batchtagging calls per tag beside ceil(followers/50), lag from scan to tagged, manager CPU per tagged follower (9 to 12 minutes), into TAGGING_OUT.
	mkdir -p $(dir $(TAGGING_OUT))
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) run ./test/bench -only tagging -out $(TAGGING_OUT) $(BENCHFLAGS)

# `make bench-folder`: only the single folder's capacity (internal/fold, TestFolderCapacity), into
# its own file; not part of `make bench` (about 5 minutes a rate: the dedupe window is filled first).
# FOLDERFLAGS passes more of its flags, e.g. FOLDERFLAGS=-folder-codes=10000.
FOLDER_OUT ?= bench/results/folder.md
FOLDER_RATES ?= 1000,3000,10000
FOLDERFLAGS ?=

.PHONY: bench-folder
bench-folder: ## Only the single folder's capacity: rounds at FOLDER_RATES scans/s with the dedupe window full against a real API server, where a round's time goes, the rate one folder sustains, into FOLDER_OUT.
	mkdir -p $(dir $(FOLDER_OUT))
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) test ./internal/fold -run '^TestFolderCapacity$$' -count=1 -v -timeout 90m -args -folder-rates=$(FOLDER_RATES) -folder-out=$(abspath $(FOLDER_OUT)) $(FOLDERFLAGS)

##@ Build

# The version the binaries report (--version) and a release is named by; a checkout between tags
# says how far past the last one it is, and "-dirty" when it has uncommitted changes.
VERSION ?= $(shell git describe --tags --always --dirty)
# Once, at start: a recipe that changed the tree would otherwise name its later outputs -dirty.
VERSION := $(VERSION)
VERSION_LDFLAGS = -X github.com/qrcode-operator/wechat-qrcode-operator/internal/version.Version=$(VERSION)

.PHONY: build
build: ## Build the manager, the callback server, and the kubectl plugin (bin/kubectl-wechat: put bin/ on PATH for `kubectl wechat`) into bin/, stamped with VERSION.
	$(GO) build -ldflags='$(VERSION_LDFLAGS)' -o $(LOCALBIN)/ ./cmd/...

# `make release`: the repository the image is pushed to (its tag is VERSION), and where the
# release is written (gitignored).
IMAGE_REPO ?= ghcr.io/qrcode-operator/wechat-qrcode-operator
RELEASE_IMG ?= $(IMAGE_REPO):$(VERSION)
RELEASE_DIR ?= dist/release/$(VERSION)
# The image's os/arch, e.g. linux/arm64; empty builds for this machine's architecture.
RELEASE_PLATFORM ?=

# No `manifests` first, unlike build-installer: a release is of what is committed, and `make test`
# (verify-generated) has checked that the committed manifests are current.
.PHONY: release
release: ## Without Docker, write into RELEASE_DIR: install.yaml, the Helm chart .tgz, image.tar (manager and callback server, tagged RELEASE_IMG; docker load, kind load image-archive, crane push) and SHA256SUMS.
	rm -rf $(RELEASE_DIR)
	mkdir -p $(RELEASE_DIR)
	hack/with-image.sh "$(RELEASE_IMG)" $(KUSTOMIZE) build config/default > $(RELEASE_DIR)/install.yaml
	$(GO) run -C hack/release . -root $(CURDIR) -version $(VERSION) -image $(RELEASE_IMG) -out $(abspath $(RELEASE_DIR)) $(if $(RELEASE_PLATFORM),-platform $(RELEASE_PLATFORM))
	cd $(RELEASE_DIR) && sha256sum -- * > SHA256SUMS

.PHONY: test-release
test-release: ## Build a release into a temporary directory and check it: image config and files, the binaries' --version, the chart.
	cd hack/release && $(GO) test $(TESTFLAGS) ./...

.PHONY: docker-build
docker-build: ## Build the container image with Docker (`make release` needs none).
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$$(git rev-parse HEAD) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the container image.
	docker push $(IMG)

##@ Deployment

KUBECTL ?= kubectl

.PHONY: install
install: manifests ## Install the CRDs (all six: accounts, codes, scan ledgers and tallies, push records) into the cluster of the current kubeconfig.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: ## Remove the CRDs: this DELETES every account, code and scan tally of the cluster (WeChat keeps the permanent codes).
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests ## Deploy the operator with image IMG to the cluster of the current kubeconfig.
	hack/with-image.sh "$(IMG)" $(KUSTOMIZE) build config/default | $(KUBECTL) apply --server-side -f -

# Everything of config/default but the CRD carries this label: undeploy keeps the CRD, and with it
# every WeChatQRCode and the record of the tickets it holds.
PART_OF = app.kubernetes.io/part-of=wechat-qrcode-operator

.PHONY: undeploy
undeploy: ## Remove the operator from the cluster; the CRDs, accounts and codes stay (`make uninstall` removes them).
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found -l $(PART_OF) -f -

.PHONY: build-installer
build-installer: manifests ## Write dist/install.yaml: CRDs and operator in one file, with image IMG.
	mkdir -p dist
	hack/with-image.sh "$(IMG)" $(KUSTOMIZE) build config/default > dist/install.yaml
