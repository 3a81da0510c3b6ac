//! Rotating checkpoints: one a day and one a week, the oldest dropped beyond a count.
//!
//! ```text
//!   <root>/daily/2026-11-20/   <root>/weekly/2026-W46/
//!   <root>/daily/2026-11-21/   <root>/weekly/2026-W47/   ◄─ links of the week's first daily
//!   <root>/daily/2026-11-22/
//! ```
//!
//! Days and ISO weeks are those of the store's clock, in UTC. A day's checkpoint is taken once:
//! a second call the same day leaves it as it is. A week's checkpoint is the first daily one
//! of that week, hard-linked (every file of a finished checkpoint is immutable), so it costs no
//! copying. A directory left unfinished by a crash (no `CHECKPOINT.json`) is removed and taken
//! again. Only names of the two shapes above are ever removed.

use std::path::{Path, PathBuf};

use strata_tiering::clock::{civil_from_days, days_from_civil};
use strata_wal::{Fs, StdFs};

use crate::backup::{backup_error, io, Checkpoint, CHECKPOINT_FILE};
use crate::error::Result;
use crate::store::Store;

/// How many rotating checkpoints are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Daily checkpoints kept (at least 1). Default: 7.
    pub daily: usize,
    /// Weekly checkpoints kept (0 for none). Default: 4.
    pub weekly: usize,
}

impl Default for Rotation {
    fn default() -> Rotation {
        Rotation {
            daily: 7,
            weekly: 4,
        }
    }
}

/// What one rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Checkpoints written (the day's, and the week's if it was new).
    pub written: Vec<PathBuf>,
    /// Checkpoints removed as the oldest beyond the counts, or as unfinished.
    pub removed: Vec<PathBuf>,
    /// Today's checkpoint, written now or earlier today.
    pub today: PathBuf,
}

impl Store {
    /// Takes today's checkpoint under `root/daily/` (and this week's under `root/weekly/`) if
    /// not taken yet, then removes the oldest beyond `rotation`'s counts.
    pub fn checkpoint_rotating(
        &self,
        root: impl AsRef<Path>,
        rotation: Rotation,
    ) -> Result<RotationReport> {
        let root = root.as_ref();
        let days = self.inner.clock.now_ms() / 86_400_000;
        let days = i64::try_from(days).unwrap_or(i64::MAX);
        let daily = root.join("daily");
        let weekly = root.join("weekly");
        let mut report = RotationReport::default();
        for dir in [&daily, &weekly] {
            strata_wal::io::create_private_dir_all(dir).map_err(io("create", dir))?;
            remove_unfinished(dir, &mut report)?;
        }

        let today = daily.join(day_name(days));
        if !today.join(CHECKPOINT_FILE).exists() {
            self.checkpoint(&today)?;
            report.written.push(today.clone());
        }
        if rotation.weekly > 0 {
            let week = weekly.join(week_name(days));
            if !week.exists() {
                link_tree(&today, &week)?;
                report.written.push(week);
            }
        }
        prune(&daily, rotation.daily.max(1), is_day_name, &mut report)?;
        prune(&weekly, rotation.weekly, is_week_name, &mut report)?;
        report.today = today;
        Ok(report)
    }
}

/// Removes checkpoints under `dir` that never finished.
fn remove_unfinished(dir: &Path, report: &mut RotationReport) -> Result<()> {
    for name in names(dir)? {
        let path = dir.join(&name);
        if (is_day_name(&name) || is_week_name(&name)) && Checkpoint::read(&path).is_err() {
            std::fs::remove_dir_all(&path).map_err(io("remove", &path))?;
            report.removed.push(path);
        }
    }
    Ok(())
}

fn names(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io("list", dir))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Keeps the newest `keep` entries of `dir` whose names pass `is_ours` (names sort by date).
fn prune(
    dir: &Path,
    keep: usize,
    is_ours: fn(&str) -> bool,
    report: &mut RotationReport,
) -> Result<()> {
    let ours: Vec<String> = names(dir)?.into_iter().filter(|n| is_ours(n)).collect();
    let excess = ours.len().saturating_sub(keep);
    for name in &ours[..excess] {
        let path = dir.join(name);
        std::fs::remove_dir_all(&path).map_err(io("remove", &path))?;
        report.removed.push(path);
    }
    Ok(())
}

/// Recreates the finished checkpoint `from` at `to` with hard links, `CHECKPOINT.json` last so
/// that `to` is complete only once everything else is there.
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    let checkpoint = Checkpoint::read(from)?;
    for file in &checkpoint.files {
        let target = to.join(&file.path);
        if let Some(parent) = target.parent() {
            strata_wal::io::create_private_dir_all(parent).map_err(io("create", parent))?;
        }
        StdFs
            .hard_link(&from.join(&file.path), &target)
            .map_err(io("link", &target))?;
    }
    for sub in ["segments", "wal"] {
        let path = to.join(sub);
        strata_wal::io::create_private_dir_all(&path).map_err(io("create", &path))?;
        StdFs
            .sync_dir(&path)
            .map_err(io("fsync directory", &path))?;
    }
    let target = to.join(CHECKPOINT_FILE);
    StdFs
        .hard_link(&from.join(CHECKPOINT_FILE), &target)
        .map_err(io("link", &target))?;
    StdFs.sync_dir(to).map_err(io("fsync directory", to))?;
    if Checkpoint::read(to)? != checkpoint {
        return Err(backup_error(to, "the linked copy differs from its source"));
    }
    Ok(())
}

/// `YYYY-MM-DD`.
fn day_name(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The ISO 8601 week, `YYYY-Www`: weeks start on Monday, and week 1 holds the year's first
/// Thursday.
fn week_name(days: i64) -> String {
    // 1970-01-01 was a Thursday; ISO weekdays run 1 (Monday) to 7.
    let weekday = (days + 3).rem_euclid(7) + 1;
    let thursday = days - weekday + 4;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    format!("{year:04}-W{week:02}")
}

fn is_day_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn is_week_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 8
        && &b[4..6] == b"-W"
        && b.iter()
            .enumerate()
            .all(|(i, c)| (4..6).contains(&i) || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_iso_weeks() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(20_414), "2025-11-22");
        // Known ISO weeks, including the ones that belong to the neighbouring year.
        for (date, week) in [
            ((2026, 11, 22), "2026-W47"),
            ((2026, 11, 23), "2026-W48"),
            ((2021, 1, 3), "2020-W53"),
            ((2024, 12, 30), "2025-W01"),
            ((2026, 1, 1), "2026-W01"),
            ((2027, 1, 1), "2026-W53"),
            ((1970, 1, 1), "1970-W01"),
        ] {
            let d = days_from_civil(date.0, date.1, date.2);
            assert_eq!(week_name(d), week, "{date:?}");
        }
        assert!(is_day_name("2026-11-22") && !is_day_name("2026-11-2x"));
        assert!(is_week_name("2026-W47") && !is_week_name("2026-47") && !is_week_name("x"));
    }
}
