//! The run-folder flags (`--out`, `--overwrite`, `--resume`, `--threads`,
//! `--stop-after-steps`) are one set shared by every training workflow: the same names and
//! help everywhere (bar each command's default folder and what --resume keeps), and the
//! same conflicts.

mod common;

use common::*;

/// The workflows and, for each, its default run folder and whether --resume keeps the
/// checkpoint's settings (none: finetune starts from --from and hides --resume).
const WORKFLOWS: [(&[&str], &str, Option<bool>); 5] = [
    (
        &["train"],
        "runs/<model>-<dataset>/version_N; on --resume the checkpoint's folder",
        Some(false),
    ),
    (&["finetune"], "runs/finetune-<model>-<dataset>/version_N", None),
    (
        &["autoencode"],
        "runs/<model>-<dataset>/version_N; on --resume the checkpoint's folder",
        Some(false),
    ),
    (
        &["gan"],
        "runs/dcgan-fashion-mnist/version_N; on --resume the checkpoint's folder",
        Some(true),
    ),
    (
        &["caption", "train"],
        "runs/captioner-<data>/version_N; on --resume the checkpoint's folder",
        Some(true),
    ),
];

/// The help text of `flag` in `help`: the rest of its line, spaces folded.
fn help_of(help: &str, flag: &str) -> String {
    let line = help
        .lines()
        .find(|l| {
            l.trim_start()
                .trim_start_matches("-o, ")
                .starts_with(&format!("{flag} "))
        })
        .unwrap_or_else(|| panic!("no {flag} in\n{help}"));
    let rest = line.split_once(flag).unwrap().1.trim_start();
    // Past the value name, if any.
    let rest = if rest.starts_with('<') {
        rest.split_once('>').unwrap().1
    } else {
        rest
    };
    rest.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn every_workflow_has_the_same_run_flags() {
    let first = ok(&["train", "--help"]);
    for (cmd, folder, keeps) in WORKFLOWS {
        let help = ok(&[cmd, &["--help"]].concat());
        for flag in ["--overwrite", "--threads", "--stop-after-steps"] {
            assert_eq!(help_of(&help, flag), help_of(&first, flag), "{cmd:?} {flag}");
        }
        assert!(help.contains("-o, --out <DIR>"), "{cmd:?}");
        assert_eq!(
            help_of(&help, "--out"),
            format!("Run folder [default: a new {folder}]"),
            "{cmd:?}"
        );
        let Some(keeps) = keeps else {
            assert!(!help.contains("--resume"), "{cmd:?}");
            continue;
        };
        let resume = help_of(&help, "--resume");
        assert!(
            resume.starts_with("Continue exactly from a checkpoint, in its own folder ("),
            "{cmd:?}: {resume}"
        );
        assert_eq!(
            resume.contains("only --epochs, --threads and --data-dir may change"),
            keeps,
            "{cmd:?}: {resume}"
        );
    }
}

#[test]
fn resume_and_out_conflict_everywhere() {
    let conflict = |args: &[&str]| {
        let res = nabla(args);
        let err = text(&res.stderr);
        assert_eq!(res.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains("cannot be used with"),
            "{args:?}: {err}"
        );
    };
    for (cmd, _, _) in WORKFLOWS {
        conflict(&[cmd, &["--resume", "a.safetensors", "--out", "b"]].concat());
    }
    conflict(&["train", "--resume", "a.safetensors", "--init-from", "b.safetensors"]);
}
