//! One way to spread work over the machine's cores, for the jobs that need it: rendering a
//! large mesh's bundles, writing its files and generating RSA keys.

/// `f` of every item, in the items' order, the items shared out in one chunk per core. The
/// calling thread takes the first chunk itself: one thread fewer, and (with glibc's allocator,
/// one arena per thread) less memory held apart per thread (issue 28).
pub fn map_on_all_cores<'a, T: Sync, R: Send>(
    items: &'a [T],
    f: impl Fn(&'a T) -> R + Sync,
) -> Vec<R> {
    let f = &f;
    chunks_on_all_cores(items, |chunk| chunk.iter().map(f).collect::<Vec<_>>())
        .into_iter()
        .flatten()
        .collect()
}

/// `f` of each chunk of the items, one chunk per core, the results in the chunks' order: for
/// work that keeps state along its chunk (an open directory, a buffer).
pub fn chunks_on_all_cores<'a, T: Sync, R: Send>(
    items: &'a [T],
    f: impl Fn(&'a [T]) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    let mut parts = items.chunks(chunk);
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = parts.map(|part| scope.spawn(move || f(part))).collect();
        let mut out = vec![f(first)];
        out.extend(workers.into_iter().map(joined));
        out
    })
}

/// What a scoped thread returned; its panic, carried on in the caller.
pub fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
