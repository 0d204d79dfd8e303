# The order the tests of each lab run in (cmake/labtests.cmake): included
# after every test area. The labs run beside each other under ctest -j.
kcm_lab_order(lab
  e2e_check-fresh e2e_deploy e2e_rerun e2e_flag e2e_leaseguard e2e_envsh e2e_customize e2e_poweroff e2e_scheduler
  become_users become_primitives become_denied become_password become_noprompt become_deploy become_rerun
  become_checkdiff become_alias
  docs_readme_example install_readme kube_lab_standins
  lab_ssh lab_isolation lab_systemd lab_inventory lab_stopstart
  runtime_step_retries systemd_lab)
kcm_lab_order(lab_state
  state_killrename state_killtransfer state_killbetween state_crossinv state_locks state_envsh
  state_limit state_nodevars state_corrupt state_anyone state_folders state_certs state_interrupted)
kcm_lab_order(lab_faults
  faults_linkdown faults_cmdtimeout faults_sshd faults_apiserver faults_diskfull faults_signal
  faults_lock faults_secrets faults_insecure faults_hostile)
kcm_lab_order(lab_misc
  etcd_masked etcd_deploy etcd_rerun etcd_rolling etcd_ha etcd_guard etcd_crashloop etcd_checkmember etcd_members etcd_forks1 etcd_gone
  files_big files_killed files_pair files_diff files_become progress_transfer progress_unit
  signals_twosig signals_grace signals_abandon signals_timeout signals_steperr signals_verbose
  signals_logjson signals_tls
  ssh_lab ssh_lab_interrupt ssh_lab_onecon ssh_lab_unreachable
  adhoc_run adhoc_limit adhoc_patterns adhoc_facts adhoc_putget adhoc_getbig adhoc_which adhoc_become adhoc_down adhoc_varorigin)
kcm_lab_order(lab_etcd4 etcd_fourth etcd_remove)

# Tests that measure failover or availability against a wall-clock budget
# (a lease handed over within lease + retry + margin, a write loop that must
# never fail) run alone: beside other labs' tests on a 2-core machine the
# stand-ins' timing is the machine's, not the product's.
set_tests_properties(e2e_deploy etcd_rolling etcd_ha etcd_guard PROPERTIES RUN_SERIAL TRUE)
