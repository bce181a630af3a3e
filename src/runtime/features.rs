//! `features`: what this runtime supports, as the runtime spec's
//! features.md describes it (containerd and CRI-O read it).

use super::R;

pub fn print() -> R<i32> {
    use crate::sandbox::cgroup::Delegation;
    let delegation = Delegation::find();
    let v1 = matches!(delegation, Some(Delegation::V1 { .. }));
    let v2 = matches!(delegation, Some(Delegation::V2 { .. }));
    let features = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": super::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "poststart", "poststop"],
        "mountOptions": [
            "bind", "rbind", "ro", "rw", "noexec", "exec", "nosuid", "suid", "nodev", "dev",
            "private", "rprivate", "relatime", "norelatime", "strictatime", "nostrictatime",
            "noatime", "atime", "nodiratime", "diratime"
        ],
        "linux": {
            "namespaces": ["mount", "pid", "ipc", "uts", "network", "user", "cgroup"],
            "capabilities": crate::sandbox::caps::NAMES.iter().map(|n| format!("CAP_{n}")).collect::<Vec<_>>(),
            "cgroup": {"v1": v1, "v2": v2, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ"],
                "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": false}}
        },
        "annotations": {
            "io.github.hutch.landlock.abi": crate::policy::landlock::kernel_abi().to_string(),
            super::POLICY_ANNOTATION: "a shipped hutch policy profile (default, judge, unconfined): its Landlock ruleset and seccomp filter apply to the container"
        }
    });
    super::print_out(&serde_json::to_string_pretty(&features).unwrap_or_default());
    Ok(0)
}
