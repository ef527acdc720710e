# WeChat QR code operator. `make help` lists the targets.

IMG ?= wechat-qrcode-operator:latest
# Where built binaries go.
LOCALBIN ?= $(CURDIR)/bin
GO ?= go
CONTROLLER_GEN ?= $(GO) tool controller-gen
KUSTOMIZE ?= $(GO) tool kustomize
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

.PHONY: manifests
manifests: ## Generate the CRD and the RBAC roles from the controller-gen markers.
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role paths=./controllers/... output:rbac:artifacts:config=config/rbac/manager
	$(CONTROLLER_GEN) rbac:roleName=callback-role paths=./internal/callback/... output:rbac:artifacts:config=config/rbac/callback

.PHONY: generate
generate: ## Generate the DeepCopy methods from the controller-gen markers.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths=./api/...

.PHONY: verify-generated
verify-generated: ## Fail when generated files are stale (run `make manifests generate` to fix).
	hack/verify-generated.sh

.PHONY: fmt
fmt: ## Run go fmt.
	$(GO) fmt ./...

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: controlplane
controlplane: ## Build (first time only) etcd, kube-apiserver and kubectl from source and print their directory.
	@hack/controlplane.sh

# Where `make dev` keeps its kubeconfigs, binaries, logs and state (gitignored).
DEV_DIR ?= .dev
# `make scan`: the code to scan and how many scans.
NAME ?=
COUNT ?= 1

# Builds hack/dev into bin/, saying every 100 packages how far a first build (which compiles the
# Kubernetes client libraries) has got; compiler errors pass through whole.
define build-dev
@$(GO) build -v -o $(LOCALBIN)/dev ./hack/dev 2>&1 | awk '/[ :]/ {print; next} {n++} n % 100 == 0 {print "build    | hack/dev: " n " packages compiled"; fflush()}'
endef

.PHONY: dev
dev: ## Run the operator on a local API server with a fake WeChat (real one: WECHAT_APP_ID=... WECHAT_APP_SECRET=... WECHAT_TOKEN=...); Ctrl-C stops it.
	$(build-dev)
	@GO="$(GO)" $(LOCALBIN)/dev up --dir $(DEV_DIR)

.PHONY: scan
scan: ## Simulate scans of a code of the running `make dev`: make scan NAME=spring-sale-poster [COUNT=3].
	$(build-dev)
	@$(LOCALBIN)/dev scan --dir $(DEV_DIR) --count $(COUNT) $(NAME)

# How long `make test` runs each fuzz target beyond its seed corpus.
FUZZTIME ?= 5s

.PHONY: test
test: verify-generated vet ## Run every test against a real kube-apiserver + etcd built from source, then a short fuzz run.
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) test $(TESTFLAGS) $(TESTPKGS)
	FUZZTIME=$(FUZZTIME) hack/fuzz-short.sh

.PHONY: fuzz
fuzz: ## Run every fuzz target for longer (FUZZTIME=10m make fuzz).
	FUZZTIME=$(FUZZTIME) hack/fuzz-short.sh

# `make bench`: the results file, and extra flags of test/bench (`go run ./test/bench -help`),
# e.g. BENCHFLAGS='-n 10000' for the issuance benchmark at 10,000 codes.
BENCH_OUT ?= bench/results/latest.md
BENCHFLAGS ?=

.PHONY: bench
bench: ## Benchmarks (issuance, renewal storm, callback, peer) on a real API server with the fake WeChat; table and JSON lines into BENCH_OUT.
	mkdir -p $(dir $(BENCH_OUT))
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) run ./test/bench -out $(BENCH_OUT) $(BENCHFLAGS)

# `make bench-peer`: only the push CPU comparison with silenceper/wechat, into its own file.
PEER_OUT ?= bench/results/peer.md

.PHONY: bench-peer
bench-peer: ## Only the push CPU per event of the callback server beside silenceper/wechat (test/bench/peer) into PEER_OUT.
	mkdir -p $(dir $(PEER_OUT))
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" $(GO) run ./test/bench -only peer -out $(PEER_OUT) $(BENCHFLAGS)

##@ Build

.PHONY: build
build: ## Build the manager, callback server and fake WeChat binaries into bin/.
	$(GO) build -o $(LOCALBIN)/ ./cmd/...

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the container image.
	docker push $(IMG)

##@ Deployment

KUBECTL ?= kubectl

.PHONY: install
install: manifests ## Install the CRD into the cluster of the current kubeconfig.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: ## Remove the CRD (and with it every WeChatQRCode) from the cluster.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests ## Deploy the operator with image IMG to the cluster of the current kubeconfig.
	hack/with-image.sh "$(IMG)" $(KUSTOMIZE) build config/default | $(KUBECTL) apply --server-side -f -

# Everything of config/default but the CRD carries this label: undeploy keeps the CRD, and with it
# every WeChatQRCode and the record of the tickets it holds.
PART_OF = app.kubernetes.io/part-of=wechat-qrcode-operator

.PHONY: undeploy
undeploy: ## Remove the operator from the cluster; the CRD and the codes stay (`make uninstall` removes them).
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found -l $(PART_OF) -f -

.PHONY: build-installer
build-installer: manifests ## Write dist/install.yaml: CRD and operator in one file, with image IMG.
	mkdir -p dist
	hack/with-image.sh "$(IMG)" $(KUSTOMIZE) build config/default > dist/install.yaml
