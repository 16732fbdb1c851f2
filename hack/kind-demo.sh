#!/usr/bin/env bash
# The demo on real kind clusters: three clusters (dev, staging, prod), the fleet image
# loaded into each, a git daemon serving the example repository, and `fleet bootstrap`
# per cluster, so each agent runs in its cluster as a Deployment.
#
# Needs Docker and kind; the CI of this repository has neither (use `make demo` there).
set -euo pipefail

IMAGE="${IMAGE:-fleet:0.1.0}"
CLUSTERS=(${CLUSTERS:-dev staging prod})
ROOT="${ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/fleet/kind-demo}"
FLEET="${FLEET:-fleet}"

missing=()
command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || missing+=("docker (running)")
command -v kind >/dev/null 2>&1 || missing+=("kind (https://kind.sigs.k8s.io)")
command -v git >/dev/null 2>&1 || missing+=("git")
command -v "$FLEET" >/dev/null 2>&1 || missing+=("fleet (make venv; . .venv/bin/activate)")
if ((${#missing[@]})); then
    echo "✗ make kind-demo needs: ${missing[*]}" >&2
    echo "  Without Docker, run 'make demo': the same fleet on local control planes." >&2
    exit 1
fi

here="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$ROOT"

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "► building $IMAGE"
    make -C "$here" image IMAGE="$IMAGE"
fi

# The example fleet repository, served to the clusters from the host: kind nodes reach the
# host at the Docker bridge gateway.
repo="$ROOT/served/fleet.git"
if [ ! -d "$repo" ]; then
    echo "► publishing clusters/ as $repo"
    mkdir -p "$ROOT/served"
    git init --quiet --bare --initial-branch=main "$repo"
    work="$(mktemp -d)"
    cp -r "$here/clusters/." "$work/"
    git -C "$work" init --quiet --initial-branch=main
    git -C "$work" add --all
    git -C "$work" -c user.name=fleet -c user.email=fleet@fleet.invalid commit --quiet -m "example fleet"
    git -C "$work" push --quiet "$repo" HEAD:refs/heads/main
    rm -rf "$work"
fi
gateway="$(docker network inspect kind -f '{{(index .IPAM.Config 0).Gateway}}' 2>/dev/null || echo 172.18.0.1)"
if [ ! -f "$ROOT/git-daemon.pid" ] || ! kill -0 "$(cat "$ROOT/git-daemon.pid")" 2>/dev/null; then
    git daemon --reuseaddr --base-path="$ROOT/served" --export-all --enable=receive-pack \
        --listen=0.0.0.0 --port=9418 --detach --pid-file="$ROOT/git-daemon.pid" "$ROOT/served"
fi

for name in "${CLUSTERS[@]}"; do
    if ! kind get clusters 2>/dev/null | grep -qx "fleet-$name"; then
        echo "► creating kind cluster fleet-$name"
        kind create cluster --name "fleet-$name" --wait 120s
    fi
    echo "► loading $IMAGE into fleet-$name"
    kind load docker-image "$IMAGE" --name "fleet-$name"
    echo "► bootstrapping $name"
    "$FLEET" bootstrap --cluster "$name" --repo "git://$gateway/fleet.git" \
        --image "$IMAGE" --context "kind-fleet-$name" --timeout 300
done

echo "✔ three kind clusters, each with its agent: kubectl --context kind-fleet-dev get units -n fleet-system"
echo "  clean up: kind delete clusters ${CLUSTERS[*]/#/fleet-}; kill \$(cat $ROOT/git-daemon.pid)"
