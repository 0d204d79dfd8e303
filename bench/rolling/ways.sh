# The three ways bench/rolling compares, shared by run.sh (etcd) and kcm.sh
# (the controller manager). Sourced; uses the caller's kcm, on and NODES.
#
# roll WAY INVENTORY PLAYBOOK OUT UNIT: rolls the flag change INVENTORY
# carries; kcmrun's output goes to OUT. Sets ROLL_T0, the roll's start (for
# the loop: after kcmrun's unit-only run, so the loop is timed alone).
roll() {
  local way=$1 inv=$2 pb=$3 out=$4 unit=$5 n
  ROLL_T0=$(date +%s.%N)
  case $way in
    leader-aware) kcm -i "$inv" "$pb" > "$out" ;;
    inventory) kcm -i "$inv" -e rolling_order=inventory "$pb" > "$out" ;;
    systemctl)
      # the unit only (no restart by kcmrun), then the guide's loop
      kcm -i "$inv" --only unit "$pb" > "$out"
      ROLL_T0=$(date +%s.%N)
      for n in "${NODES[@]}"; do on "$n" "systemctl daemon-reload && systemctl restart $unit"; done
      ;;
    *) echo "bench/rolling: unknown way $way" >&2; return 2 ;;
  esac
}
