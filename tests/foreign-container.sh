#!/usr/bin/env bash
# Issue 14's test that the project leaves a user's containers alone: a container named "relay" (the
# name of a lab host before the lab's names got the smarthost- prefix), started from the lab image
# but without the project's container label, must survive the Molecule scenarios and make clean-lab.
#   foreign-container.sh create IMAGE LABEL   before the scenarios: start it (or note the one there)
#   foreign-container.sh check                after them: same container, still running; then removed,
#                                             unless it was there before the test (then it is the user's)
set -euo pipefail
name=relay
state=$(cd "$(dirname "$0")/.." && pwd)/.tmp/foreign-container
mkdir -p "$(dirname "$state")"
case ${1:?usage: foreign-container.sh create IMAGE LABEL | check} in
  create)
    image=${2:?image} label=${3:?label}
    if podman container exists "$name"; then
      echo "a container named $name exists already: the test checks that it survives and leaves it there"
      echo "$(podman container inspect --format '{{.Id}}' "$name") user" >"$state"
    else
      id=$(podman run -d --name "$name" --network none "$image" sleep infinity)
      echo "$id test" >"$state"
      echo "started the container $name (${id:0:12}) from $image, no network"
    fi
    # Containers inherit the image's labels: this one must not look like one of the project's.
    value=$(podman container inspect --format "{{index .Config.Labels \"$label\"}}" "$name")
    if [ "$value" = container ]; then
      echo "$name carries $label=container: it would be taken for one of the project's" >&2
      exit 1
    fi
    echo "$name has ${value:+$label=$value, }no $label=container label"
    ;;
  check)
    read -r id owner <"$state"
    now=$(podman container inspect --format '{{.Id}} {{.State.Running}}' "$name" 2>/dev/null) || now="none"
    rm -f "$state"
    if [ "$now" != "$id true" ]; then
      echo "the container $name (${id:0:12}) that the project did not create was removed or stopped: now '$now'" >&2
      [ "$owner" != test ] || [ "$now" = none ] || podman rm -f -t 0 "$name" >/dev/null
      exit 1
    fi
    echo "the container $name (${id:0:12}) is still there and running"
    if [ "$owner" = test ]; then
      podman rm -f -t 0 "$id" >/dev/null
      echo "removed $name (the test's own)"
    fi
    ;;
  *) echo "foreign-container.sh: unknown command $1" >&2; exit 2 ;;
esac
