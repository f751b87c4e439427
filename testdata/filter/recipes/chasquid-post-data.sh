#!/bin/sh
# /etc/chasquid/hooks/post-data: chasquid gives the envelope in MAIL_FROM,
# RCPT_TO, REMOTE_ADDR and EHLO_DOMAIN, the message on stdin; exit 20
# refuses for good, other failures defer. On success chasquid adds our
# output to the message as headers, so the reply line is dropped.
out=$(/usr/local/sbin/mxfilter check --headers \
	--clamd 127.0.0.1:3310 --spamd 127.0.0.1:783)
rc=$?
if [ $rc = 0 ]; then
	printf '%s\n' "$out" | sed '$d'
else
	printf '%s\n' "$out" | tail -n 1
fi
exit $rc
