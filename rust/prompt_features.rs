//! Hashed word n-gram features of a prompt: the words and word pairs it contains, each hashed
//! into a fixed space of `2^HASH_BITS` slots, with how often it occurs.
//!
//! A word is a maximal run of alphanumeric characters, lowercased; everything else separates
//! words. ASCII, most prompts, takes a byte-level fast path; other characters use the Unicode
//! tables of Rust's standard library (identical on every platform). The hash is FNV-1a over the
//! n-gram's UTF-8 bytes (a bigram's two words joined by one space) followed by the SplitMix64
//! finalizer, whose top bits are the slot: fixed by this file alone, so the same prompt gives the
//! same features on every platform, in every process and every future version.

/// The feature space has `2^HASH_BITS` slots; with a few thousand distinct n-grams in a warm-up
/// collisions are rare, and the slots fit in a `u32`.
pub const HASH_BITS: u32 = 18;

const FNV_OFFSET: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01B3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// FNV-1a's low bits mix poorly; the SplitMix64 finalizer spreads every input bit to the top.
fn slot(hash: u64) -> u32 {
    let mut z = hash;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    #[allow(clippy::cast_possible_truncation)] // the top HASH_BITS bits fit in a u32
    let top = (z >> (64 - HASH_BITS)) as u32;
    top
}

/// The lowercased words of `text`, in order, each handed to `word`. One buffer is reused.
fn for_each_word(text: &str, mut word: impl FnMut(&str)) {
    let mut buffer = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            buffer.push(c.to_ascii_lowercase());
        } else if !c.is_ascii() && c.is_alphanumeric() {
            buffer.extend(c.to_lowercase());
        } else if !buffer.is_empty() {
            word(&buffer);
            buffer.clear();
        }
    }
    if !buffer.is_empty() {
        word(&buffer);
    }
}

/// The slot of every unigram and bigram of `text`, in order of appearance (with repeats); with
/// `names`, each slot's n-gram is also handed over (for showing clusters), else it is not built.
pub fn slots(text: &str, mut names: Option<&mut dyn FnMut(u32, &str)>) -> Vec<u32> {
    let mut out = Vec::new();
    // The previous word's hash with the separating space folded in: a bigram hashes as
    // "previous next" without building the string.
    let mut previous: Option<(u64, String)> = None;
    for_each_word(text, |word| {
        let unigram = slot(fnv1a(FNV_OFFSET, word.as_bytes()));
        out.push(unigram);
        if let Some(names) = names.as_mut() {
            names(unigram, word);
        }
        if let Some((prefix, previous_word)) = &previous {
            let bigram = slot(fnv1a(*prefix, word.as_bytes()));
            out.push(bigram);
            if let Some(names) = names.as_mut() {
                names(bigram, &format!("{previous_word} {word}"));
            }
        }
        let prefix = fnv1a(fnv1a(FNV_OFFSET, word.as_bytes()), b" ");
        let kept = if names.is_some() {
            word.to_owned()
        } else {
            String::new()
        };
        previous = Some((prefix, kept));
    });
    out
}

/// Distinct slots of `text`, ascending, each with its count.
pub fn counts(text: &str) -> Vec<(u32, u32)> {
    counted(slots(text, None))
}

/// Sort `slots` and count the runs.
pub fn counted(mut slots: Vec<u32>) -> Vec<(u32, u32)> {
    slots.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::with_capacity(slots.len());
    for s in slots {
        match out.last_mut() {
            Some((last, count)) if *last == s => *count += 1,
            _ => out.push((s, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_alphanumeric_runs() {
        let mut words = Vec::new();
        for_each_word("Hello, WORLD! x2 -- Été ÇA", |w| words.push(w.to_owned()));
        assert_eq!(words, ["hello", "world", "x2", "été", "ça"]);
    }

    #[test]
    fn unigrams_and_bigrams_with_their_counts() {
        // "a b a b": unigrams a, b, a, b and bigrams "a b", "b a", "a b".
        let c = counts("a b a b");
        let total: u32 = c.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 7);
        assert_eq!(c.len(), 4);
        assert_eq!(c.iter().filter(|(_, n)| *n == 2).count(), 3);
        let mut named = Vec::new();
        let mut record = |s: u32, n: &str| named.push((s, n.to_owned()));
        slots("a b", Some(&mut record));
        let names: Vec<&str> = named.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "a b"]);
    }

    #[test]
    fn slots_are_fixed_by_this_file() {
        // Pinned values: a change of hash, tokenizer or space breaks every saved mapper.
        assert_eq!(slots("hello world", None), [23_544, 19_142, 5_933]);
        assert!(slots("hello world", None).iter().all(|&s| s < (1 << HASH_BITS)));
        assert!(slots("", None).is_empty());
        assert!(slots("!!! ...", None).is_empty());
    }
}
