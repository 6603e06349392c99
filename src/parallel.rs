//! One way to spread work over the machine's cores, for the two jobs that need it: rendering a
//! large mesh's bundles and generating RSA keys.

/// `f` of every item, in the items' order, the items shared out in one chunk per core. The
/// calling thread takes the first chunk itself: one thread fewer, and (with glibc's allocator,
/// one arena per thread) less memory held apart per thread (issue 28).
pub fn map_on_all_cores<'a, T: Sync, R: Send>(
    items: &'a [T],
    f: impl Fn(&'a T) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let chunk = items.len().div_ceil(threads).max(1);
    let f = &f;
    let mut parts = items.chunks(chunk);
    let Some(first) = parts.next() else {
        return Vec::new();
    };
    std::thread::scope(|scope| {
        let workers: Vec<_> = parts
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<_>>()))
            .collect();
        let mut out: Vec<R> = first.iter().map(f).collect();
        for worker in workers {
            out.extend(
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        out
    })
}
