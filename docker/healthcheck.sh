#!/bin/bash
# pgslab-healthcheck -- the image's HEALTHCHECK: send PostgreSQL's SSLRequest
# to 127.0.0.1:${PGSLAB_PORT:-6432} and expect pgslab's one-byte answer
# ('N', or 'S' once TLS is configured).  Exit 0 healthy, 1 not.
port=${PGSLAB_PORT:-6432}
{ exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || exit 1
# length 8, code 80877103 (0x04d2162f)
printf '\x00\x00\x00\x08\x04\xd2\x16\x2f' >&3 || exit 1
IFS= read -r -n 1 -t 3 answer <&3 || exit 1
exec 3>&-
case "$answer" in
N | S) exit 0 ;;
*) exit 1 ;;
esac
