#!/bin/sh
# /usr/local/libexec/mxfilter-postfix, run by a Postfix pipe(8) service:
#   mxfilter unix - n n - 10 pipe flags=Rq user=filter null_sender=
#     argv=/usr/local/libexec/mxfilter-postfix ${sender} ${recipient}
# Postfix has already accepted the message: a refusal here is a bounce
# (exit 69) and a deferral stays in Postfix's queue (exit 75).
sender=$1; shift
tmp=$(mktemp) || exit 75
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" || exit 75
reply=$(/usr/local/sbin/mxfilter check --from "$sender" --rcpt "$*" \
	--clamd 127.0.0.1:3310 <"$tmp")
case $? in
0) exec "${SENDMAIL:-/usr/sbin/sendmail}" -G -i -f "$sender" -- "$@" <"$tmp" ;;
20) echo "$reply"; exit 69 ;;
*) echo "$reply"; exit 75 ;;
esac
