//! Writing Git objects: the objects of one change go into one pack file (whole objects,
//! zlib at a fast level, compressed on all cores) with its version-2 index, made durable
//! before the change's commit is referenced. git reads the result like any pack it
//! received; `git gc` folds the packs of many commits together later.
//!
//! A pack is written as `objects/pack/tmp_pack_verbund_*`, its object count patched in
//! and its checksum computed when the change commits; pack and index are fsynced and
//! renamed into place (pack first: git only looks at packs that have an index), then the
//! folder is fsynced. A crash leaves at most a temporary file, removed on the next open.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::{Compress, Compression, FlushCompress, Status};
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::oid::{Kind, Oid};

/// Prefix of this crate's temporary files in `objects/pack`; see [`remove_temporaries`].
pub(crate) const TEMP_PREFIX: &str = "tmp_verbund_";

/// zlib level of pack entries: the fastest one; `git gc` recompresses (with deltas)
/// whatever it repacks.
const LEVEL: u32 = 1;

/// Objects smaller than this are stored in zlib's uncompressed block format: starting a
/// zlib stream clears a 128 KiB hash table, which for the typical 750-byte manifest costs
/// more than compressing saves (measured: a cold write of 530 MB took 5.1 s compressed
/// and 3.2 s stored, for a pack of 565 instead of 353 MB until the next `git gc`).
const COMPRESS_FROM: usize = 4096;

/// The first bytes of a version-2 pack index: magic and version.
pub(crate) const INDEX_MAGIC: &[u8; 8] = b"\xfftOc\0\0\0\x02";

/// Bytes of a version-2 pack index before the object names: magic, version, fan-out
/// table (whose last entry counts the objects).
pub(crate) const INDEX_HEADER: usize = 8 + 256 * 4;

/// Below this many bytes of work a batch is handled on the calling thread.
const PARALLEL_MIN_BYTES: usize = 256 * 1024;

/// Threads used for hashing and compression: asked once, as the answer reads the
/// cgroup's CPU quota from files (measured at ~1 % of a change's CPU when asked per pack).
pub(crate) fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4)
    })
}

/// `f` over `items` in order, on [`threads`] threads when the summed `weight` is large
/// enough to pay for them; each thread starts with its own state from `init`.
pub(crate) fn parallel_map<T, S, R>(
    items: &[T],
    weight: impl Fn(&T) -> usize,
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, &T) -> R + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send,
{
    let threads = threads();
    let total: usize = items.iter().map(weight).sum();
    if threads < 2 || items.len() < 2 || total < PARALLEL_MIN_BYTES {
        let mut state = init();
        return items.iter().map(|item| f(&mut state, item)).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let (init, f) = (&init, &f);
                scope.spawn(move || {
                    let mut state = init();
                    part.iter()
                        .map(|item| f(&mut state, item))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker.join() {
                Ok(results) => results,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// `data` as a zlib stream: compressed with a reused compressor, or stored when small
/// (see [`COMPRESS_FROM`]).
pub(crate) fn deflate(compress: &mut Compress, data: &[u8]) -> Vec<u8> {
    if data.len() < COMPRESS_FROM {
        return stored(data);
    }
    compress.reset();
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    loop {
        let consumed = compress.total_in() as usize;
        let rest = data.get(consumed..).unwrap_or_default();
        let status = compress.compress_vec(rest, &mut out, FlushCompress::Finish);
        match status {
            Ok(Status::StreamEnd) => return out,
            // Out of room (or no progress possible without it): grow and go on.
            Ok(_) | Err(_) => out.reserve(out.capacity().max(64)),
        }
    }
}

/// A zlib stream of `data` in stored (uncompressed) deflate blocks.
pub(crate) fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 11 + data.len() / 65535 * 5);
    out.extend_from_slice(&[0x78, 0x01]);
    let mut chunks = data.chunks(65535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for byte in chunk {
            a += u32::from(*byte);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

pub(crate) fn compressor() -> Compress {
    Compress::new(Compression::new(LEVEL), true)
}

/// One object of a pack's index.
#[derive(Clone, Copy)]
struct Indexed {
    oid: Oid,
    offset: u64,
    crc: u32,
}

/// The objects a change writes, collected in one temporary pack file.
pub(crate) struct PackWriter {
    pack_dir: PathBuf,
    pack: Option<Pending>,
}

struct Pending {
    temp: PathBuf,
    file: BufWriter<File>,
    offset: u64,
    entries: Vec<Indexed>,
    /// The offset of each object in the pack.
    index: HashMap<Oid, u64>,
}

impl PackWriter {
    /// A writer into `objects/pack` of the repository at `git_dir`; no file is created
    /// before the first object.
    pub(crate) fn new(git_dir: &Path) -> Self {
        PackWriter {
            pack_dir: git_dir.join("objects").join("pack"),
            pack: None,
        }
    }

    /// Whether the pending pack holds `oid`.
    pub(crate) fn contains(&self, oid: &Oid) -> bool {
        self.pack
            .as_ref()
            .is_some_and(|p| p.index.contains_key(oid))
    }

    /// Adds objects (name, kind, content) that the pack does not hold yet, compressing
    /// them in parallel.
    pub(crate) fn add(&mut self, objects: &[(Oid, Kind, &[u8])]) -> Result<()> {
        let mut fresh: Vec<(Oid, Kind, &[u8])> = Vec::with_capacity(objects.len());
        {
            let mut seen = std::collections::HashSet::new();
            for (oid, kind, data) in objects {
                if !self.contains(oid) && seen.insert(*oid) {
                    fresh.push((*oid, *kind, *data));
                }
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let compressed = parallel_map(
            &fresh,
            |(_, _, data)| data.len(),
            compressor,
            |compress, (_, _, data)| deflate(compress, data),
        );
        let pending = self.pending()?;
        for ((oid, kind, data), body) in fresh.iter().zip(compressed) {
            let header = entry_header(*kind, data.len() as u64);
            let mut crc = crc32fast::Hasher::new();
            crc.update(&header);
            crc.update(&body);
            let io = |e| Error::io("writing", &pending.temp, e);
            pending.file.write_all(&header).map_err(io)?;
            pending.file.write_all(&body).map_err(io)?;
            if u32::try_from(pending.entries.len()).is_err() {
                return Err(Error::io("writing", &pending.temp, too_many()));
            }
            pending.index.insert(*oid, pending.offset);
            pending.entries.push(Indexed {
                oid: *oid,
                offset: pending.offset,
                crc: crc.finalize(),
            });
            pending.offset += (header.len() + body.len()) as u64;
        }
        Ok(())
    }

    fn pending(&mut self) -> Result<&mut Pending> {
        if self.pack.is_none() {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            fs::create_dir_all(&self.pack_dir)
                .map_err(|e| Error::io("creating", &self.pack_dir, e))?;
            let temp = self.pack_dir.join(format!(
                "{TEMP_PREFIX}pack_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&temp)
                .map_err(|e| Error::io("creating", &temp, e))?;
            let mut file = BufWriter::with_capacity(1 << 20, file);
            // The object count is patched in by `finish`.
            file.write_all(b"PACK\0\0\0\x02\0\0\0\0")
                .map_err(|e| Error::io("writing", &temp, e))?;
            self.pack = Some(Pending {
                temp,
                file,
                offset: 12,
                entries: Vec::new(),
                index: HashMap::new(),
            });
        }
        self.pack
            .as_mut()
            .ok_or_else(|| Error::io("writing", PathBuf::new(), std::io::Error::other("no pack")))
    }

    /// Reads back an object of the pending pack.
    pub(crate) fn read(&mut self, oid: &Oid) -> Result<Option<(Kind, Vec<u8>)>> {
        let Some(pending) = self.pack.as_mut() else {
            return Ok(None);
        };
        let Some(&offset) = pending.index.get(oid) else {
            return Ok(None);
        };
        let io = |e| Error::io("reading", &pending.temp, e);
        pending.file.flush().map_err(io)?;
        let mut file = File::open(&pending.temp).map_err(io)?;
        file.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut reader = BufReader::new(file);
        let corrupt = || Error::CorruptObject(oid.to_string());
        let (kind, size) = read_entry_header(&mut reader)
            .map_err(io)?
            .ok_or_else(corrupt)?;
        let kind = Kind::from_pack_type(kind).ok_or_else(corrupt)?;
        // The size comes from our own file; still, a damaged one must not make us reserve
        // more than the pack could hold.
        let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 20));
        flate2::read::ZlibDecoder::new(reader)
            .take(size)
            .read_to_end(&mut data)
            .map_err(io)?;
        Ok(Some((kind, data)))
    }

    /// Completes the pack and its index durably and moves them into place; returns the
    /// pack's path (its index beside it, `.idx`). Does nothing, and returns `None`, when
    /// no object was added.
    pub(crate) fn finish(mut self) -> Result<Option<PathBuf>> {
        let Some(pending) = self.pack.take() else {
            return Ok(None);
        };
        let temp = pending.temp.clone();
        let result = finish(&self.pack_dir, pending);
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map(Some)
    }
}

impl Drop for PackWriter {
    /// A change that is dropped (or commits nothing) leaves no file behind.
    fn drop(&mut self) {
        if let Some(pending) = self.pack.take() {
            drop(pending.file);
            let _ = fs::remove_file(&pending.temp);
        }
    }
}

fn too_many() -> std::io::Error {
    std::io::Error::other("more than 2^32 objects in one pack")
}

/// The header of a pack entry: type and inflated size.
fn entry_header(kind: Kind, mut size: u64) -> Vec<u8> {
    let mut header = Vec::with_capacity(10);
    let mut byte = ((kind as u8) << 4) | (size & 0x0f) as u8;
    size >>= 4;
    while size != 0 {
        header.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    header.push(byte);
    header
}

/// Reads what [`entry_header`] wrote: the type bits and the inflated size; `None` when
/// the size does not fit 64 bits (a damaged entry).
fn read_entry_header(reader: &mut impl Read) -> std::io::Result<Option<(u8, u64)>> {
    let mut byte = [0u8; 1];
    reader.read_exact(&mut byte)?;
    let kind = (byte[0] >> 4) & 7;
    let mut size = u64::from(byte[0] & 0x0f);
    let mut shift = 4u32;
    while byte[0] & 0x80 != 0 {
        reader.read_exact(&mut byte)?;
        let bits = u64::from(byte[0] & 0x7f);
        match bits.checked_shl(shift) {
            Some(part) if part >> shift == bits => size |= part,
            _ => return Ok(None),
        }
        shift += 7;
    }
    Ok(Some((kind, size)))
}

fn finish(pack_dir: &Path, pending: Pending) -> Result<PathBuf> {
    let Pending {
        temp,
        file,
        mut entries,
        ..
    } = pending;
    let io = |action, e| Error::io(action, &temp, e);
    let mut file = file
        .into_inner()
        .map_err(|e| io("writing", e.into_error()))?;
    let count = u32::try_from(entries.len()).map_err(|_| io("writing", too_many()))?;
    file.seek(SeekFrom::Start(8))
        .map_err(|e| io("writing", e))?;
    file.write_all(&count.to_be_bytes())
        .map_err(|e| io("writing", e))?;
    // The checksum covers the patched header, so the pack is read once more.
    file.seek(SeekFrom::Start(0))
        .map_err(|e| io("reading", e))?;
    let checksum = sha1_to_end(&mut file).map_err(|e| io("reading", e))?;
    file.write_all(&checksum).map_err(|e| io("writing", e))?;
    file.sync_all().map_err(|e| io("syncing", e))?;
    drop(file);

    entries.sort_unstable_by_key(|e| e.oid);
    let index = index_bytes(&entries, &checksum);
    let name = Oid(checksum).to_string();
    let temp_index = temp.with_extension("idx");
    let write_index = || -> std::io::Result<()> {
        let mut f = File::create(&temp_index)?;
        f.write_all(&index)?;
        f.sync_all()
    };
    if let Err(e) = write_index() {
        let _ = fs::remove_file(&temp_index);
        return Err(Error::io("writing", &temp_index, e));
    }
    let pack = pack_dir.join(format!("pack-{name}.pack"));
    let idx = pack_dir.join(format!("pack-{name}.idx"));
    fs::rename(&temp, &pack).map_err(|e| Error::io("renaming into", &pack, e))?;
    if let Err(e) = fs::rename(&temp_index, &idx) {
        let _ = fs::remove_file(&temp_index);
        return Err(Error::io("renaming into", &idx, e));
    }
    sync_dir(pack_dir)?;
    Ok(pack)
}

/// The SHA-1 of what remains of `file`, which is left at its end.
fn sha1_to_end(file: &mut File) -> std::io::Result<[u8; 20]> {
    let mut hasher = Sha1::new();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        let read = chunk.len();
        reader.consume(read);
    }
    Ok(hasher.finalize().into())
}

/// Installs a pack and its index received from elsewhere into `objects/pack` as
/// `pack-<checksum>`, durably (temporary names, fsync, pack renamed before its index,
/// folder fsynced), unless a pack of that name is there already. Both are checked first
/// ([`check_pack`]). Returns whether anything was written.
pub(crate) fn install(git_dir: &Path, pack: &[u8], idx: &[u8]) -> Result<bool> {
    let name = check_pack(pack, idx)?.to_string();
    let pack_dir = git_dir.join("objects").join("pack");
    let final_pack = pack_dir.join(format!("pack-{name}.pack"));
    let final_idx = pack_dir.join(format!("pack-{name}.idx"));
    if final_pack.is_file() && final_idx.is_file() {
        return Ok(false);
    }
    fs::create_dir_all(&pack_dir).map_err(|e| Error::io("creating", &pack_dir, e))?;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let stem = format!(
        "{TEMP_PREFIX}install_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let temp_pack = pack_dir.join(format!("{stem}.pack"));
    let temp_idx = pack_dir.join(format!("{stem}.idx"));
    let write = |path: &Path, bytes: &[u8]| -> Result<()> {
        let mut f = File::create(path).map_err(|e| Error::io("creating", path, e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io("writing", path, e))?;
        f.sync_all().map_err(|e| Error::io("syncing", path, e))
    };
    let placed = write(&temp_pack, pack)
        .and_then(|()| write(&temp_idx, idx))
        .and_then(|()| {
            fs::rename(&temp_pack, &final_pack)
                .map_err(|e| Error::io("renaming into", &final_pack, e))
        })
        .and_then(|()| {
            fs::rename(&temp_idx, &final_idx).map_err(|e| Error::io("renaming into", &final_idx, e))
        });
    if let Err(e) = placed {
        let _ = fs::remove_file(&temp_pack);
        let _ = fs::remove_file(&temp_idx);
        return Err(e);
    }
    sync_dir(&pack_dir)?;
    Ok(true)
}

/// Checks that `pack` is a whole version-2 or -3 pack (its trailing checksum is the
/// SHA-1 of what precedes it) and `idx` a version-2 index of exactly that pack (its
/// own checksum holds, it names the pack's checksum and counts the pack's objects).
/// Returns the pack's checksum, which names it.
pub(crate) fn check_pack(pack: &[u8], idx: &[u8]) -> Result<Oid> {
    let invalid = |why: &str| Error::InvalidPack(why.to_owned());
    let header = pack.first_chunk::<12>().filter(|_| pack.len() >= 32);
    let Some([b'P', b'A', b'C', b'K', 0, 0, 0, 2 | 3, count @ ..]) = header else {
        return Err(invalid("no pack header"));
    };
    let (body, trailer) = pack
        .split_last_chunk::<20>()
        .ok_or_else(|| invalid("no pack header"))?;
    let checksum: [u8; 20] = Sha1::digest(body).into();
    if checksum != *trailer {
        return Err(invalid("the pack's checksum does not match its content"));
    }
    let no_index = || invalid("no version-2 pack index");
    if idx.len() < INDEX_HEADER + 40 || !idx.starts_with(INDEX_MAGIC) {
        return Err(no_index());
    }
    let (idx_body, idx_trailer) = idx.split_last_chunk::<20>().ok_or_else(no_index)?;
    let idx_checksum: [u8; 20] = Sha1::digest(idx_body).into();
    if idx_checksum != *idx_trailer {
        return Err(invalid("the index's checksum does not match its content"));
    }
    if idx_body.last_chunk::<20>() != Some(&checksum) {
        return Err(invalid("the index belongs to another pack"));
    }
    // The last fan-out entry counts all objects, as the pack's header does.
    let indexed = idx.get(..INDEX_HEADER).and_then(<[u8]>::last_chunk::<4>);
    if indexed != Some(count) {
        return Err(invalid("the index counts other objects than the pack"));
    }
    Ok(Oid(checksum))
}

/// A version-2 pack index of `entries` (sorted by name).
fn index_bytes(entries: &[Indexed], pack_checksum: &[u8; 20]) -> Vec<u8> {
    let n = entries.len();
    let mut out = Vec::with_capacity(8 + 1024 + n * 28 + 40);
    out.extend_from_slice(INDEX_MAGIC);
    // Fan-out: for each first byte, how many names start with it or a smaller one.
    for byte in 0..=u8::MAX {
        let total = entries.partition_point(|e| e.oid.0[0] <= byte) as u32;
        out.extend_from_slice(&total.to_be_bytes());
    }
    for e in entries {
        out.extend_from_slice(&e.oid.0);
    }
    for e in entries {
        out.extend_from_slice(&e.crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for e in entries {
        if e.offset < 0x8000_0000 {
            out.extend_from_slice(&(e.offset as u32).to_be_bytes());
        } else {
            let slot = 0x8000_0000 | large.len() as u32;
            out.extend_from_slice(&slot.to_be_bytes());
            large.push(e.offset);
        }
    }
    for offset in large {
        out.extend_from_slice(&offset.to_be_bytes());
    }
    out.extend_from_slice(pack_checksum);
    let checksum: [u8; 20] = Sha1::digest(&out).into();
    out.extend_from_slice(&checksum);
    out
}

/// Flushes a folder's entries (the renames into it) to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|e| Error::io("syncing", dir, e))
}

/// The names temporary files in `objects/pack` start with: verbund's own
/// ([`TEMP_PREFIX`]) and git's (`tmp_pack_*`, `tmp_idx_*`, `tmp_rev_*` of
/// `pack-objects`, which a killed fold or `gc` leaves behind; `.tmp-<pid>-pack*` of
/// `repack`). Never the name of a finished pack (`pack-<hash>.*`).
const TEMPORARY: [&str; 2] = ["tmp_", ".tmp-"];

/// Removes temporary pack files a killed writer (verbund, or a git it started) left in
/// `objects/pack`. Call only when no git process works in the repository.
pub(crate) fn remove_temporaries(git_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = git_dir.join("objects").join("pack");
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(removed);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if TEMPORARY.iter().any(|prefix| name.starts_with(prefix)) {
            let path = entry.path();
            fs::remove_file(&path).map_err(|e| Error::io("removing", &path, e))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_of_verbund_and_git_are_removed_and_packs_kept() {
        let dir = tempfile::tempdir().unwrap();
        let packs = dir.path().join("objects").join("pack");
        fs::create_dir_all(&packs).unwrap();
        let temporary = [
            format!("{TEMP_PREFIX}pack_1_2"),
            "tmp_pack_Ab12Cd".to_owned(),
            "tmp_idx_Ab12Cd".to_owned(),
            "tmp_rev_Ab12Cd".to_owned(),
            ".tmp-4242-pack-0123.pack".to_owned(),
        ];
        let kept = [
            "pack-0123abcd.pack",
            "pack-0123abcd.idx",
            "pack-0123abcd.rev",
        ];
        for name in temporary.iter().map(String::as_str).chain(kept) {
            fs::write(packs.join(name), b"x").unwrap();
        }
        let mut removed: Vec<String> = remove_temporaries(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        let mut want = temporary.to_vec();
        want.sort();
        assert_eq!(removed, want);
        let mut left: Vec<String> = fs::read_dir(&packs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "pack-0123abcd.idx",
                "pack-0123abcd.pack",
                "pack-0123abcd.rev"
            ]
        );
    }

    #[test]
    fn entry_headers_carry_type_and_size() {
        assert_eq!(entry_header(Kind::Blob, 5), [0x35]);
        assert_eq!(entry_header(Kind::Tree, 16), [0xa0, 0x01]);
        assert_eq!(entry_header(Kind::Commit, 1000), [0x98, 0x3e]);
    }

    #[test]
    fn entry_headers_read_back_and_oversized_ones_are_refused() {
        for size in [0, 5, 15, 16, 1000, u64::from(u32::MAX), u64::MAX] {
            let header = entry_header(Kind::Blob, size);
            let read = read_entry_header(&mut header.as_slice()).expect("complete");
            assert_eq!(read, Some((Kind::Blob as u8, size)), "{size}");
        }
        // Eleven continuation bytes of ones: more than 64 bits of size.
        let mut damaged = vec![0xbf];
        damaged.extend([0xff; 10]);
        damaged.push(0x7f);
        assert_eq!(
            read_entry_header(&mut damaged.as_slice()).expect("complete"),
            None
        );
        // A header cut short is an I/O error, not a size.
        assert!(read_entry_header(&mut [0xb5u8].as_slice()).is_err());
    }

    /// An empty pack (no objects) and its index, as [`finish`] writes them.
    fn empty_pack() -> (Vec<u8>, Vec<u8>) {
        let mut pack = b"PACK\0\0\0\x02\0\0\0\0".to_vec();
        let checksum: [u8; 20] = Sha1::digest(&pack).into();
        pack.extend_from_slice(&checksum);
        (pack, index_bytes(&[], &checksum))
    }

    #[test]
    fn a_whole_pack_with_its_index_is_accepted() {
        let (pack, idx) = empty_pack();
        let checksum: [u8; 20] = Sha1::digest(&pack[..12]).into();
        assert_eq!(check_pack(&pack, &idx).unwrap(), Oid(checksum));
    }

    /// Received packs are checked before they are installed: any truncation of the pack
    /// or its index is refused, never a panic.
    #[test]
    fn truncated_packs_and_indexes_are_invalid() {
        let (pack, idx) = empty_pack();
        for end in 0..pack.len() {
            let checked = check_pack(&pack[..end], &idx);
            assert!(
                matches!(checked, Err(Error::InvalidPack(_))),
                "pack of {end} bytes"
            );
        }
        for end in 0..idx.len() {
            let checked = check_pack(&pack, &idx[..end]);
            assert!(
                matches!(checked, Err(Error::InvalidPack(_))),
                "index of {end} bytes"
            );
        }
    }

    #[test]
    fn malformed_pack_headers_are_invalid() {
        let (pack, idx) = empty_pack();
        let with = |at: usize, byte: u8| {
            let mut bad = pack.clone();
            bad[at] = byte;
            bad
        };
        for bad in [with(0, b'X'), with(4, 1), with(7, 4), with(11, 1)] {
            let checked = check_pack(&bad, &idx);
            assert!(matches!(checked, Err(Error::InvalidPack(_))), "{bad:?}");
        }
        let mut other_index = idx.clone();
        other_index[8] = 1;
        let checked = check_pack(&pack, &other_index);
        assert!(matches!(checked, Err(Error::InvalidPack(_))));
    }

    #[test]
    fn deflate_round_trips() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut c = compressor();
        let medium = vec![7u8; 70_000];
        for input in [&b""[..], b"x", &data[..4000], &medium, &data] {
            for packed in [deflate(&mut c, input), stored(input)] {
                let mut out = Vec::new();
                flate2::read::ZlibDecoder::new(packed.as_slice())
                    .read_to_end(&mut out)
                    .unwrap();
                assert_eq!(out, input);
            }
        }
    }
}
