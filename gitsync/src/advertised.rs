//! The refs a remote advertises, read through libgit2 directly.
//!
//! git2's `Remote::list` builds a slice from libgit2's array of heads without checking the
//! array for null, and libgit2 hands out null for a remote that advertises no refs at all (a
//! fresh bare repository): undefined behaviour, which debug builds abort on. Reading the array
//! here checks it first.

use std::ffi::{CStr, CString};
use std::os::raw::c_int;
use std::ptr;

use git2::Oid;
use libgit2_sys as raw;

/// Frees a detached remote when dropped.
struct Detached(*mut raw::git_remote);

impl Drop for Detached {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a successful `git_remote_create_detached`, is freed
        // only here, and nothing borrowed from it outlives this guard.
        #[allow(unsafe_code)]
        unsafe {
            raw::git_remote_disconnect(self.0);
            raw::git_remote_free(self.0);
        }
    }
}

fn check(code: c_int) -> Result<(), git2::Error> {
    if code < 0 {
        return Err(git2::Error::last_error(code));
    }
    Ok(())
}

/// Connects to `url` for fetching and returns every advertised `(ref name, commit)`; an
/// empty list for a remote without refs.
pub(crate) fn advertised_refs(url: &str) -> Result<Vec<(String, Oid)>, git2::Error> {
    let url = CString::new(url).map_err(|_| git2::Error::from_str("the URL holds a NUL byte"))?;
    let mut out = Vec::new();
    // SAFETY: every call gets pointers that are valid for it: `url` is a live C string; the
    // remote pointer is checked by `check` before use and freed once by `Detached`; the
    // callbacks, proxy and header arguments may be null (libgit2 then uses its defaults).
    // `git_remote_ls` fills `heads` with an array of `len` pointers owned by the remote's
    // transport, alive until the remote is disconnected or freed, which happens only after
    // the loop; a null array (no refs) and null entries are skipped, and every name is a
    // NUL-terminated string libgit2 allocated.
    #[allow(unsafe_code)]
    unsafe {
        raw::init();
        let mut remote: *mut raw::git_remote = ptr::null_mut();
        check(raw::git_remote_create_detached(&mut remote, url.as_ptr()))?;
        let remote = Detached(remote);
        check(raw::git_remote_connect(
            remote.0,
            raw::GIT_DIRECTION_FETCH,
            ptr::null(),
            ptr::null(),
            ptr::null(),
        ))?;
        let mut heads: *mut *const raw::git_remote_head = ptr::null_mut();
        let mut len: usize = 0;
        check(raw::git_remote_ls(&mut heads, &mut len, remote.0))?;
        if !heads.is_null() {
            for i in 0..len {
                let head = *heads.add(i);
                if head.is_null() || (*head).name.is_null() {
                    continue;
                }
                let name = CStr::from_ptr((*head).name).to_string_lossy().into_owned();
                let oid = Oid::from_bytes(&(*head).oid.id)?;
                out.push((name, oid));
            }
        }
        drop(remote);
    }
    Ok(out)
}
