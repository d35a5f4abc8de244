#!/usr/bin/env bash
# Regenerates tests/data/telephony/: caller utterances of the phone-call kind, spoken by flite voices
# (not the agent's Piper voice) and put through the telephone channel: 8 kHz mono G.711 mu-law WAV.
# The references in transcripts.tsv are already normalised the way the WER test compares them
# (lower case, no punctuation, numbers spelled out). Needs Debian's flite and sox.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/data/telephony
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
voices=(slt rms awb)
: >"$out/transcripts.tsv"
n=0
while IFS= read -r line; do
  [ -z "$line" ] && continue
  n=$((n + 1))
  name=$(printf 'u%02d.wav' "$n")
  voice=${voices[$(((n - 1) % ${#voices[@]}))]}
  flite -voice "$voice" -t "$line" -o "$tmp/raw.wav"
  sox "$tmp/raw.wav" -r 8000 -c 1 -e mu-law "$out/$name"
  printf '%s\t%s\t%s\n' "$name" "$voice" "$line" >>"$out/transcripts.tsv"
done <<'LINES'
i would like to book an appointment for tuesday
my name is sarah johnson
please call me back at five five five one two three four
stop calling me
what are your opening hours
how much does a cleaning cost
can i talk to a real person
yes that is right
no that is not my number
i need to cancel my appointment
do you have anything available next week
my phone number is two zero six five five five zero one nine eight
thank you very much goodbye
is the office open on saturday
i have a toothache and it really hurts
can you tell me your prices please
my name is michael brown
i would prefer the morning if possible
do you accept my insurance
that works for me
can you send me a text message to confirm
i am running about ten minutes late
where is your office located
please do not call this number again
LINES
echo "telephony set: $n utterances in $out/"
