//! Running out of memory, said on one line. libtorch reports a failed allocation (CUDA's
//! "out of memory", the CPU allocator's "can't allocate memory") as a C++ exception, which
//! tch turns into a panic or an error carrying the whole C++ trace; the hook `main`
//! installs turns either into one `error:` line with the batch size to try.
use std::sync::atomic::{AtomicUsize, Ordering};

/// The batch size of the command running, for the advice (0: none noted).
static BATCH: AtomicUsize = AtomicUsize::new(0);

/// Notes the batch size a command computes with.
pub fn note_batch_size(batch: usize) {
    BATCH.store(batch, Ordering::Relaxed);
}

/// Makes a panic of libtorch's allocator end the process with one error line (exit 1);
/// every other panic stays as it was.
pub fn install_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        match out_of_memory(text) {
            Some(line) => {
                eprintln!("error: {line}");
                std::process::exit(1);
            }
            None => default(info),
        }
    }));
}

/// The one line that says `message` (a libtorch error) is an allocation that failed, with
/// the batch size to try; `None` for any other message.
pub fn out_of_memory(message: &str) -> Option<String> {
    let (what, at) = if let Some(at) = message.find("CUDA out of memory") {
        ("the GPU ran out of memory", at)
    } else if let Some(at) = message.find("can't allocate memory") {
        ("the host ran out of memory", at)
    } else {
        return None;
    };
    // libtorch's own sentence up to the first line break: the size it tried, what is free.
    let detail: String = message[at..]
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(240)
        .collect();
    let batch = BATCH.load(Ordering::Relaxed);
    let advice = match batch {
        0 | 1 => "use a smaller network or less data per step".to_string(),
        b => format!("try --batch-size {} (this command used {b})", b / 2),
    };
    Some(format!("{what} ({}): {advice}", detail.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_allocation_and_the_batch_to_try() {
        note_batch_size(512);
        let cuda = "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB of which 1.20 GiB is free.\nException raised from malloc at ...\nframe #0: c10::Error::Error";
        let line = out_of_memory(cuda).unwrap();
        assert!(
            line.starts_with(
                "the GPU ran out of memory (CUDA out of memory. Tried to allocate 2.00 GiB."
            ),
            "{line}"
        );
        assert!(
            line.ends_with("try --batch-size 256 (this command used 512)"),
            "{line}"
        );
        assert!(!line.contains('\n') && !line.contains("frame #0"), "{line}");
        let cpu = "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes. Error code 12";
        assert!(out_of_memory(cpu).unwrap().starts_with("the host ran out of memory (can't allocate memory: you tried to allocate 1099511627776 bytes"));
        assert_eq!(out_of_memory("index out of range"), None);
    }
}
