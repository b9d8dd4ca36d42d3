# relay_map_digest TYPE SOURCE SUFFIX: print "TYPE DIGEST" for the lookup table SOURCE and its
# compiled map SOURCE+SUFFIX. The digest covers what the postmap module checks before it leaves
# a table alone: both files' permissions, a compiled map not older than its source, the source
# lines, and the entries that 'postmap -s' reads back (with its exit status, so a corrupt map
# never looks like an empty one). The smarthost.postfix.relay_map_digest filter computes the
# digest of a map that holds exactly the desired entries; tests/unit compare the two.
relay_map_digest() {
  local type=$1 source=$2 compiled=$2$3 digest
  digest=$(
    {
      stat -c '%a' -- "$source" "$compiled"
      if [ "$compiled" -ot "$source" ]; then echo stale; fi
      LC_ALL=C sort -- "$source"
      echo
      # Postfix commands sleep a second before a fatal exit: no postmap for a map that is not there.
      if [ -e "$compiled" ]; then
        postmap -s "$type:$source" | LC_ALL=C sort
        echo "${PIPESTATUS[0]}"
      else
        echo missing
      fi
    } 2>/dev/null | sha256sum | cut -d ' ' -f 1
  )
  printf '%s %s\n' "$type" "$digest"
}
