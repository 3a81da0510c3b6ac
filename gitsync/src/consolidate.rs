//! Automatic repacking: merging the small packs into one compressed pack, geometrically.
//!
//! Every commit adds one pack of stored (uncompressed) objects. Past `max_packs` packs, the
//! smallest ones are merged into one new pack with its index:
//!
//! - each object is read once: sliced from the pack file when it is in stored form (its entry
//!   CRC32 and Adler-32 checked, see `packread`), else through libgit2 and hashed again;
//! - blobs pass through a window of at most 64 MiB of the merged packs at a time, and the new
//!   pack is written as it goes (see `packstream`), so a merge's memory does not grow with
//!   the packs it merges; only their trees and commits are held throughout, for the deltas;
//! - objects of 1 KiB or more are compressed with zlib, on several threads;
//! - an older version of a tree that a newer one among the merged objects replaced becomes a
//!   delta against it (see `delta`); there is no delta search, so the cost follows the objects
//!   merged. `ColdStore::repack` (libgit2's pack builder, with a delta search) remains the way
//!   to make the repository as small as it can be.
//!
//! Only one merge or full repack runs at a time on a repository (an advisory lock; a merge
//! that finds it taken skips, see `repo::Guard`).
//!
//! Which packs merge, by object count (a geometric progression, as `git repack --geometric=2`
//! keeps):
//!
//! ```text
//!   counts ascending:  n1 n2 ... nk | n(k+1) ... nm
//!   kept: the largest packs while each holds at least twice the objects of the next smaller;
//!   merged: the rest (at least two), plus any larger pack under twice the merged total
//! ```
//!
//! So a large pack is rewritten only once as many objects again have been written beside it:
//! each object is merged a logarithmic number of times over the repository's life, and the
//! number of packs stays logarithmic in its size. (Bytes would mislead: a commit's pack is
//! stored uncompressed, a merged one compressed, so merged packs would look small and be
//! rewritten every time.)
//!
//! Every object listed in a merged pack's index goes into the new pack, reachable or not, so
//! nothing can be lost by a wrong reachability walk; the old packs are removed (index first)
//! only after the new pack and index are fsynced. Unreachable objects (from a commit whose
//! branch update lost a race) are dropped by the next full `repack`.

use std::path::{Path, PathBuf};

use std::collections::HashMap;

use flate2::{Compress, Compression, FlushCompress, Status};
use git2::{ObjectType, Oid, Repository};
use strata_tiering::io::Fs;

use crate::delta;
use crate::error::{Error, Result};
use crate::packfile::{self, Stored};
use crate::packread::{self, SourcePack};
use crate::packstream::PackWriter;
use crate::repo::{self, RepackReport};

/// Objects smaller than this stay in zlib's stored form. Resetting a zlib compressor clears
/// its 64 KiB hash table, which costs more than compressing a small state blob saves (about a
/// fifth of ~150 bytes); chunk files and large trees are where compression pays.
const COMPRESS_FROM: usize = 1024;

/// How old a pack without an index must be before a merge removes it as a crash's leftover.
const ORPHAN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Files an interrupted install left in `pack_dir` (`*.tmp`), once they are old.
fn old_temporaries(pack_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(pack_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "tmp") && is_old(path))
        .collect()
}

/// Whether the file at `path` was last changed [`ORPHAN_AGE`] ago or more.
fn is_old(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age >= ORPHAN_AGE)
}

/// The packs to merge, from `packs` (path, object count): see the module docs. At least two.
fn choose(mut packs: Vec<(PathBuf, u64)>) -> Vec<PathBuf> {
    packs.sort_by_key(|(_, count)| *count);
    let count = |i: usize| packs[i].1;
    // From the largest down, the packs that already hold twice the next smaller one's objects
    // stay; the first pair that breaks the progression, and everything below it, merge.
    let mut split = packs.len().saturating_sub(1);
    while split > 0 && count(split) >= count(split - 1).saturating_mul(2) {
        split -= 1;
    }
    if split > 0 {
        split += 1;
    }
    let mut taken = split.max(2).min(packs.len());
    let mut sum: u64 = (0..taken).map(count).sum();
    // A larger pack that is not twice what is merged below it joins too.
    while taken < packs.len() && count(taken) < sum.saturating_mul(2) {
        sum = sum.saturating_add(count(taken));
        taken += 1;
    }
    packs.truncate(taken);
    packs.into_iter().map(|(path, _)| path).collect()
}

/// Bytes of the merged packs read at once: blobs pass through the merge a window at a time,
/// so its memory is bounded by this and the trees and commits of the merged packs (kept for
/// the pairing of tree versions), not by the size of the packs.
const WINDOW_BYTES: u64 = 64 << 20;

/// An object to copy: which merged pack holds it, its index entry, and where its entry ends.
struct Planned {
    source: usize,
    listed: packread::Listed,
    end: u64,
}

/// The object `planned`, whose entry lies in `raw` (the pack's bytes from `raw_start`): sliced
/// from it when in stored form (CRC32 and Adler-32 checked), else read through libgit2 (which
/// tries the pack it last found an object in first) and hashed again, as this copy is about to
/// become the only one and libgit2 does not hash what it reads.
fn read_object(
    odb: &git2::Odb<'_>,
    source: &SourcePack,
    raw: &[u8],
    raw_start: u64,
    planned: &Planned,
) -> Result<(ObjectType, Vec<u8>)> {
    let id = planned.listed.id;
    let relative = packread::Listed {
        offset: planned.listed.offset - raw_start,
        ..planned.listed
    };
    let entry_end = usize::try_from(planned.end - raw_start).unwrap_or(usize::MAX);
    if let Some(found) = raw
        .get(..entry_end)
        .and_then(|entry| packread::stored_object(entry, &relative))
    {
        return Ok(found);
    }
    let object = odb
        .read(id)
        .map_err(|e| Error::git(format!("read object {id}"), e))?;
    let hashed = Oid::hash_object(object.kind(), object.data())
        .map_err(|e| Error::git(format!("hash object {id}"), e))?;
    if hashed != id {
        return Err(Error::corrupt(
            source.path(),
            format!("object {id} reads back as {hashed}"),
        ));
    }
    Ok((object.kind(), object.data().to_vec()))
}

/// Appends `entries` to `writer`, compressed on several threads: objects of
/// [`COMPRESS_FROM`] bytes or more with zlib's fast level, smaller ones in stored form.
fn write_parts(
    writer: &mut PackWriter<'_>,
    entries: &[(Stored, Oid, &[u8])],
    pack_dir: &Path,
) -> Result<()> {
    let parts = packfile::encode_in_runs(entries, 1, || {
        let mut compressor = Compress::new(Compression::fast(), true);
        move |data: &[u8], out: &mut Vec<u8>| {
            if data.len() < COMPRESS_FROM {
                packfile::store(data, out);
                Ok(())
            } else {
                deflate(&mut compressor, data, out)
            }
        }
    })
    .map_err(|source| Error::Io {
        op: "build pack",
        path: pack_dir.to_path_buf(),
        source,
    })?;
    parts.into_iter().try_for_each(|part| writer.append(part))
}

/// Deltas for the older versions of trees: where a commit in `objects` changed a tree (at
/// any depth) and both versions are in `objects`, the older one becomes a delta against the
/// newer, if that saves at least half its bytes. Newer versions stay whole, as git keeps
/// them, so reading the head costs no delta; a chain is at most [`MAX_DELTA_DEPTH`] long.
fn tree_deltas(
    repo: &Repository,
    objects: &HashMap<Oid, (ObjectType, &[u8])>,
) -> HashMap<Oid, (Oid, Vec<u8>)> {
    let mut deltas = HashMap::new();
    for (old, newer) in tree_bases(repo, objects) {
        let (Some((_, old_bytes)), Some((_, newer_bytes))) =
            (objects.get(&old), objects.get(&newer))
        else {
            continue;
        };
        if let Some(delta) =
            delta::tree_delta(newer_bytes, old_bytes).filter(|d| d.len() * 2 < old_bytes.len())
        {
            deltas.insert(old, (newer, delta));
        }
    }
    // Cut chains: taken in order of their length, a delta whose base already sits at the
    // greatest depth is dropped (its tree stays whole and starts a new chain).
    let chain = |id: &Oid, deltas: &HashMap<Oid, (Oid, Vec<u8>)>| {
        let (mut length, mut at) = (0usize, *id);
        while let Some((base, _)) = deltas.get(&at) {
            length += 1;
            at = *base;
        }
        length
    };
    let mut by_length: Vec<(usize, Oid)> =
        deltas.keys().map(|id| (chain(id, &deltas), *id)).collect();
    by_length.sort_unstable_by(|(a, a_id), (b, b_id)| {
        a.cmp(b).then_with(|| packfile::id_order(a_id, b_id))
    });
    let mut depth: HashMap<Oid, usize> = HashMap::new();
    for (_, id) in by_length {
        let Some((base, _)) = deltas.get(&id) else {
            continue;
        };
        let at = depth.get(base).copied().unwrap_or(0) + 1;
        if at > MAX_DELTA_DEPTH {
            deltas.remove(&id);
        } else {
            depth.insert(id, at);
        }
    }
    deltas
}

/// Longest delta chain a merge writes (git's default `pack.depth`).
const MAX_DELTA_DEPTH: usize = 50;

/// For each older tree version among `objects`, the newer version that replaced it: found by
/// pairing each commit's trees with its parents' trees at the same paths. Commits are taken
/// oldest first and no pairing may close a cycle, so every chain ends in a whole tree.
fn tree_bases(repo: &Repository, objects: &HashMap<Oid, (ObjectType, &[u8])>) -> HashMap<Oid, Oid> {
    let mut commits: Vec<(i64, Oid, Vec<Oid>)> = objects
        .iter()
        .filter(|(_, (kind, _))| *kind == ObjectType::Commit)
        .filter_map(|(_, (_, data))| parse_commit(data))
        .collect();
    commits.sort();
    let tree_of = |commit: Oid| match objects.get(&commit) {
        Some((_, data)) => parse_commit(data).map(|(_, tree, _)| tree),
        None => repo.find_commit(commit).ok().map(|c| c.tree_id()),
    };
    let mut bases = HashMap::new();
    for (_, tree, parents) in &commits {
        for parent in parents {
            if let Some(parent_tree) = tree_of(*parent) {
                pair_trees(*tree, parent_tree, objects, &mut bases);
            }
        }
    }
    bases
}

/// Records `new` as the base of `old`, then pairs their subtrees of the same name.
fn pair_trees(
    new: Oid,
    old: Oid,
    objects: &HashMap<Oid, (ObjectType, &[u8])>,
    bases: &mut HashMap<Oid, Oid>,
) {
    if new == old {
        return;
    }
    let (Some((ObjectType::Tree, new_bytes)), Some((ObjectType::Tree, old_bytes))) =
        (objects.get(&new), objects.get(&old))
    else {
        return;
    };
    if !bases.contains_key(&old) {
        let mut at = new;
        let mut cycle = false;
        while let Some(next) = bases.get(&at) {
            if *next == old {
                cycle = true;
                break;
            }
            at = *next;
        }
        if !cycle {
            bases.insert(old, new);
        }
    }
    let subtrees = |bytes: &[u8]| -> Vec<(Vec<u8>, Oid)> {
        delta::tree_entries(bytes)
            .unwrap_or_default()
            .into_iter()
            .filter_map(delta::split_entry)
            .filter(|(mode, _, _)| *mode == b"40000")
            .filter_map(|(_, name, id)| Some((name.to_vec(), Oid::from_bytes(id).ok()?)))
            .collect()
    };
    let old_subtrees: HashMap<Vec<u8>, Oid> = subtrees(old_bytes).into_iter().collect();
    for (name, id) in subtrees(new_bytes) {
        if let Some(old_id) = old_subtrees.get(&name) {
            pair_trees(id, *old_id, objects, bases);
        }
    }
}

/// A commit's committer time, tree and parents, from its bytes.
fn parse_commit(data: &[u8]) -> Option<(i64, Oid, Vec<Oid>)> {
    let text = std::str::from_utf8(data).ok()?;
    let (mut tree, mut parents, mut time) = (None, Vec::new(), 0);
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if let Some(hex) = line.strip_prefix("tree ") {
            tree = Oid::from_str(hex).ok();
        } else if let Some(hex) = line.strip_prefix("parent ") {
            parents.push(Oid::from_str(hex).ok()?);
        } else if let Some(rest) = line.strip_prefix("committer ") {
            time = rest
                .rsplit(' ')
                .nth(1)
                .and_then(|seconds| seconds.parse().ok())
                .unwrap_or(0);
        }
    }
    Some((time, tree?, parents))
}

/// Appends `data` to `out` as one zlib stream, reusing `compressor`.
fn deflate(compressor: &mut Compress, data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    compressor.reset();
    out.reserve(data.len() / 2 + 64);
    loop {
        let consumed = usize::try_from(compressor.total_in())
            .map_err(|_| std::io::Error::other("zlib input count overflows"))?;
        let rest = data.get(consumed..).unwrap_or_default();
        match compressor.compress_vec(rest, out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return Ok(()),
            Ok(Status::Ok | Status::BufError) => out.reserve(out.capacity().max(4096)),
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
}

/// Merges the smallest packs of the repository at `path` into one (see the module docs).
/// `repo` is an open handle used to read the objects; the caller reopens it afterwards, as
/// it may still map removed packs.
pub fn consolidate(fs: &dyn Fs, path: &Path, repo: &Repository) -> Result<RepackReport> {
    consolidate_within(fs, path, repo, WINDOW_BYTES)
}

/// [`consolidate`], reading at most `window` bytes of the merged packs at once (more only
/// for a single object larger than that).
fn consolidate_within(
    fs: &dyn Fs,
    path: &Path,
    repo: &Repository,
    window: u64,
) -> Result<RepackReport> {
    let Some(_maintenance) = repo::try_maintenance_guard(path)? else {
        // Another handle is merging or repacking; this one's packs wait for the next commit.
        let packs = repo::packs(path)?;
        return Ok(RepackReport {
            packs_before: packs.len(),
            packs_after: packs.len(),
            bytes_before: packs.iter().map(|(_, len)| len).sum(),
            bytes_after: packs.iter().map(|(_, len)| len).sum(),
        });
    };
    let before = repo::packs(path)?;
    let mut report = RepackReport {
        packs_before: before.len(),
        bytes_before: before.iter().map(|(_, len)| len).sum(),
        ..RepackReport::default()
    };
    // Only packs with an index are readable. One without is a crash's leftover once it is
    // old; a young one may be another handle's install in progress, and stays.
    let (indexed, unindexed): (Vec<_>, Vec<_>) = before
        .into_iter()
        .partition(|(pack, _)| pack.with_extension("idx").exists());
    let orphans: Vec<PathBuf> = unindexed
        .into_iter()
        .map(|(pack, _)| pack)
        .filter(|pack| is_old(pack))
        .collect();
    let mut counted = Vec::with_capacity(indexed.len());
    for (pack, _) in indexed {
        let (count, _) = packread::index_count(&pack.with_extension("idx"))?;
        counted.push((pack, count as u64));
    }
    let merged = choose(counted);
    if merged.len() < 2 {
        // Another handle merged them already: nothing to do.
        report.packs_after = report.packs_before;
        report.bytes_after = report.bytes_before;
        return Ok(report);
    }
    let pack_dir = path.join("objects/pack");
    let mut sources = Vec::with_capacity(merged.len());
    let mut plan: Vec<Planned> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (source, pack) in merged.iter().enumerate() {
        let opened = SourcePack::open(pack)?;
        for (listed, end) in opened.entries() {
            // An object in two merged packs is copied once.
            if seen.insert(listed.id) {
                plan.push(Planned {
                    source,
                    listed,
                    end,
                });
            }
        }
        sources.push(opened);
    }
    drop(seen);
    let count = u32::try_from(plan.len())
        .map_err(|_| Error::corrupt(&pack_dir, "more objects than a pack can count"))?;
    let odb = repo
        .odb()
        .map_err(|e| Error::git("open the object database", e))?;
    let mut writer = PackWriter::create(fs, &pack_dir, count)?;
    // Blobs (and tags) pass through a window at a time; trees and commits stay for the
    // pairing of tree versions below, which needs them all.
    let mut structure: Vec<(ObjectType, Oid, Vec<u8>)> = Vec::new();
    let mut at = 0;
    while at < plan.len() {
        let first = &plan[at];
        let mut stop = at + 1;
        while stop < plan.len()
            && plan[stop].source == first.source
            && plan[stop].end - first.listed.offset <= window
        {
            stop += 1;
        }
        let window_plan = &plan[at..stop];
        let source = &sources[first.source];
        let raw = source.read(first.listed.offset, window_plan[window_plan.len() - 1].end)?;
        let mut passing: Vec<(ObjectType, Oid, Vec<u8>)> = Vec::new();
        for planned in window_plan {
            let (kind, data) = read_object(&odb, source, &raw, first.listed.offset, planned)?;
            if matches!(kind, ObjectType::Tree | ObjectType::Commit) {
                structure.push((kind, planned.listed.id, data));
            } else {
                passing.push((kind, planned.listed.id, data));
            }
        }
        let entries: Vec<(Stored, Oid, &[u8])> = passing
            .iter()
            .map(|(kind, id, data)| (Stored::Whole(*kind), *id, data.as_slice()))
            .collect();
        write_parts(&mut writer, &entries, &pack_dir)?;
        at = stop;
    }
    drop(sources);
    let contents: HashMap<Oid, (ObjectType, &[u8])> = structure
        .iter()
        .map(|(kind, id, data)| (*id, (*kind, data.as_slice())))
        .collect();
    let deltas = tree_deltas(repo, &contents);
    // Bases before their deltas, so a reader going front to back meets each base first.
    let depth = |id: &Oid| {
        let (mut depth, mut at) = (0, *id);
        while let Some((base, _)) = deltas.get(&at) {
            depth += 1;
            at = *base;
        }
        depth
    };
    let mut order: Vec<(usize, Oid)> = contents.keys().map(|id| (depth(id), *id)).collect();
    order.sort_unstable_by(|(a, a_id), (b, b_id)| {
        a.cmp(b).then_with(|| packfile::id_order(a_id, b_id))
    });
    let entries: Vec<(Stored, Oid, &[u8])> = order
        .iter()
        .filter_map(|(_, id)| {
            let (kind, data) = contents.get(id)?;
            Some(match deltas.get(id) {
                Some((base, delta)) => (Stored::RefDelta(*base), *id, delta.as_slice()),
                None => (Stored::Whole(*kind), *id, *data),
            })
        })
        .collect();
    write_parts(&mut writer, &entries, &pack_dir)?;
    let installed = writer.install()?;
    let new_name = installed
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    for leftover in old_temporaries(&pack_dir) {
        repo::remove_if_present(fs, &leftover)?;
    }
    for old in merged.iter().chain(&orphans) {
        if old
            .file_stem()
            .is_some_and(|stem| stem == new_name.as_str())
        {
            continue;
        }
        repo::remove_pack(fs, old)?;
    }
    repo::sync_dir(fs, &pack_dir)?;
    let after = repo::packs(path)?;
    report.packs_after = after.len();
    report.bytes_after = after.iter().map(|(_, len)| len).sum();
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_tiering::io::StdFs;

    fn names(chosen: Vec<PathBuf>) -> Vec<String> {
        chosen
            .into_iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_smallest_packs_merge_while_each_next_is_at_most_twice_their_sum() {
        let packs = |sizes: &[u64]| -> Vec<(PathBuf, u64)> {
            sizes
                .iter()
                .map(|s| (PathBuf::from(format!("p{s}")), *s))
                .collect()
        };
        // 1000 and 200 form a progression above the small ones.
        assert_eq!(
            names(choose(packs(&[1000, 10, 10, 10, 35, 200]))),
            ["p10", "p10", "p10", "p35"]
        );
        // Equal large packs break the progression: everything merges.
        assert_eq!(choose(packs(&[4, 4, 4, 9000, 9000, 9000])).len(), 6);
        // A large pack under twice the merged total joins.
        assert_eq!(choose(packs(&[100, 100, 100, 350])).len(), 4);
        assert_eq!(choose(packs(&[100, 100, 1000])).len(), 2);
        // At least two, even when the second is much larger.
        assert_eq!(names(choose(packs(&[5, 1000]))), ["p5", "p1000"]);
        assert_eq!(choose(packs(&[7; 40])).len(), 40);
    }

    /// A merge reading one object at a time writes the same objects as one reading all at
    /// once: every object of the merged packs is there, and the repository is sound.
    #[test]
    fn a_merge_through_the_smallest_window_keeps_every_object() {
        use crate::store::{ColdOptions, ColdStore, Trigger};
        use strata_tiering::{Change, Key};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cold.git");
        let options = ColdOptions {
            keep_chunks: 2,
            max_packs: 1_000,
            ..ColdOptions::default()
        };
        let clock = std::sync::Arc::new(strata_tiering::clock::ManualClock::new(1_700_000_000_000));
        let store = ColdStore::open(&path, options, clock).unwrap();
        for batch in 0..7u64 {
            let changes: Vec<Change> = (0..30u64)
                .map(|i| {
                    let key = Key::new(format!("k{}", (batch * 30 + i) % 47)).unwrap();
                    Change::put(key, batch * 30 + i + 1, format!("{{\"v\":{batch}}}"))
                })
                .collect();
            store.commit(&changes, Trigger::Manual, None).unwrap();
        }
        let before: Vec<Oid> = repo::packs(&path)
            .unwrap()
            .iter()
            .flat_map(|(pack, _)| {
                packread::index_entries(&pack.with_extension("idx"))
                    .unwrap()
                    .0
                    .into_iter()
                    .map(|l| l.id)
            })
            .collect();
        let repo = Repository::open_bare(&path).unwrap();
        let report = consolidate_within(&StdFs, &path, &repo, 1).unwrap();
        assert!(report.packs_after < report.packs_before, "{report:?}");
        drop(repo);
        let repo = Repository::open_bare(&path).unwrap();
        let odb = repo.odb().unwrap();
        for id in &before {
            assert!(odb.exists(*id), "{id} lost by the merge");
        }
        repo::assert_fsck_clean(&path);
        drop(store);
    }

    #[test]
    fn deflate_round_trips_through_zlib() {
        use std::io::Read;
        let mut compressor = Compress::new(Compression::fast(), true);
        for data in [&b""[..], b"abc", &vec![7u8; 300_000]] {
            let mut out = vec![1, 2];
            deflate(&mut compressor, data, &mut out).unwrap();
            assert_eq!(out[..2], [1, 2], "appends");
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(&out[2..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
        }
    }
}
