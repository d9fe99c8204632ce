#!/bin/sh
set -e
# The real mx-puppet-discord image's ENTRYPOINT, /opt/mx-puppet-discord/docker-run.sh,
# as far as the stand-in supports it: CONFIG_PATH and REGISTRATION_PATH default
# to the real image's ENV; no registration generation, no privilege drop (the
# stand-in never runs as root).
CONFIG_PATH="${CONFIG_PATH:-/data/config.yaml}"
REGISTRATION_PATH="${REGISTRATION_PATH:-/data/discord-registration.yaml}"
if [ ! -f "$CONFIG_PATH" ]; then
	echo 'No config found'
	exit 1
fi
exec /usr/local/bin/node '/opt/mx-puppet-discord/build/index.js' \
	-c "$CONFIG_PATH" \
	-f "$REGISTRATION_PATH" \
	"$@"
