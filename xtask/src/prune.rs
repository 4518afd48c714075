//! Keeping the build cache from filling a shared disk.
//!
//! Cargo never deletes outputs: every change to a crate's dependency graph leaves another
//! test executable of hundreds of megabytes in `deps/`. When the disk holding the target
//! directory runs low, the superseded ones (an older executable of the same target name) and
//! the incremental caches are deleted; cargo rebuilds any output it then misses.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::shell::{cmd, output};

/// Below this many free bytes on the target directory's disk, the cache is pruned.
const LOW: u64 = 20 << 30;

/// Prunes the target directory `target` when its disk has less than [`LOW`] bytes free.
pub fn if_low_on_disk(target: &Path) -> Result<()> {
    let Some(free) = free_bytes(target) else {
        return Ok(());
    };
    if free >= LOW {
        return Ok(());
    }
    let freed = superseded(target)?;
    eprintln!(
        "{} GiB free on the disk of {}: deleted {} MiB of superseded test executables and \
         incremental caches",
        free >> 30,
        target.display(),
        freed >> 20
    );
    Ok(())
}

/// Free bytes on the disk holding `dir`, from `df`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = output(&mut cmd("df", &["--output=avail", "-B1", dir.to_str()?]))?;
    out.lines().last()?.trim().parse().ok()
}

/// Deletes, in every profile directory under `target`, the test executables superseded by a
/// newer one of the same name and the incremental caches; returns the bytes freed.
fn superseded(target: &Path) -> Result<u64> {
    let mut freed = 0;
    for profile in profiles(target) {
        freed += superseded_executables(&profile.join("deps"))?;
        let incremental = profile.join("incremental");
        if incremental.is_dir() {
            freed += size(&incremental);
            std::fs::remove_dir_all(&incremental)
                .with_context(|| format!("deleting {}", incremental.display()))?;
        }
    }
    Ok(freed)
}

/// The directories under `target` (one or two levels down) that hold a `deps/`.
fn profiles(target: &Path) -> Vec<PathBuf> {
    let children = |d: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    children(target)
        .into_iter()
        .flat_map(|d| {
            let mut all = children(&d);
            all.push(d);
            all
        })
        .filter(|d| d.join("deps").is_dir())
        .collect()
}

/// Deletes the executables in `deps` (named `<target>-<hash>`, no extension) older than the
/// newest of their target name; returns the bytes freed.
fn superseded_executables(deps: &Path) -> Result<u64> {
    let mut by_name: HashMap<String, Vec<(SystemTime, PathBuf, u64)>> = HashMap::new();
    for entry in std::fs::read_dir(deps).with_context(|| format!("reading {}", deps.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let path = entry.path();
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 || path.extension().is_some() {
            continue;
        }
        let Some((name, _hash)) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit_once('-'))
        else {
            continue;
        };
        by_name
            .entry(name.to_owned())
            .or_default()
            .push((meta.modified()?, path, meta.len()));
    }
    let mut freed = 0;
    for mut builds in by_name.into_values() {
        builds.sort_by_key(|(modified, _, _)| *modified);
        builds.pop();
        for (_, path, len) in builds {
            std::fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))?;
            freed += len;
        }
    }
    Ok(freed)
}

/// The total size of the files under `dir`.
fn size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::fs::{File, FileTimes};
    use std::time::Duration;

    use super::*;

    fn file(path: &Path, len: u64, mode: u32, age_s: u64) {
        let f = File::create(path).unwrap();
        f.set_len(len).unwrap();
        f.set_times(FileTimes::new().set_modified(SystemTime::now() - Duration::from_secs(age_s)))
            .unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn only_older_executables_of_a_name_and_incremental_caches_are_deleted() {
        let target = std::env::temp_dir().join(format!("xtask-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&target);
        let deps = target.join("debug/deps");
        let nested = target.join("wasm32-unknown-unknown/release/deps");
        let incremental = target.join("debug/incremental/x");
        for d in [&deps, &nested, &incremental] {
            std::fs::create_dir_all(d).unwrap();
        }
        file(&deps.join("catalog-aaaa"), 100, 0o755, 300);
        file(&deps.join("catalog-bbbb"), 200, 0o755, 10);
        file(&deps.join("inbox-cccc"), 50, 0o755, 300);
        file(&deps.join("libserde-dddd.rlib"), 70, 0o644, 300);
        file(&deps.join("serde-eeee.d"), 5, 0o644, 300);
        file(&deps.join("serde-ffff.d"), 5, 0o644, 10);
        file(&nested.join("rules-1111"), 30, 0o755, 300);
        file(&nested.join("rules-2222"), 40, 0o755, 10);
        file(&incremental.join("cache"), 9, 0o644, 10);

        assert_eq!(superseded(&target).unwrap(), 100 + 30 + 9);

        let left = |d: &Path| -> Vec<String> {
            let mut n: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            left(&deps),
            [
                "catalog-bbbb",
                "inbox-cccc",
                "libserde-dddd.rlib",
                "serde-eeee.d",
                "serde-ffff.d"
            ]
        );
        assert_eq!(left(&nested), ["rules-2222"]);
        assert!(!target.join("debug/incremental").exists());
        std::fs::remove_dir_all(&target).unwrap();
    }

    #[test]
    fn the_free_space_of_a_directory_is_read() {
        let free = free_bytes(&std::env::temp_dir()).unwrap();
        assert!(free > 0);
    }
}
