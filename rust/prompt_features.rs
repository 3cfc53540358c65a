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
/// Only fitting uses it (to name n-grams); [`slots`] hashes the same bytes without a buffer.
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

/// Receives each slot with the n-gram it stands for.
pub type Namer<'a> = &'a mut dyn FnMut(u32, &str);

/// The slot of every unigram and bigram of `text`, in order of appearance (with repeats); with
/// `names`, each slot's n-gram is also handed over (for showing clusters).
pub fn slots(text: &str, names: Option<Namer<'_>>) -> Vec<u32> {
    match names {
        Some(names) => named_slots(text, names),
        None => fast_slots(text),
    }
}

fn named_slots(text: &str, names: &mut dyn FnMut(u32, &str)) -> Vec<u32> {
    let mut out = Vec::new();
    let mut previous: Option<(u64, String)> = None;
    for_each_word(text, |word| {
        let unigram_hash = fnv1a(FNV_OFFSET, word.as_bytes());
        let unigram = slot(unigram_hash);
        out.push(unigram);
        names(unigram, word);
        if let Some((prefix, previous_word)) = &previous {
            let bigram = slot(fnv1a(*prefix, word.as_bytes()));
            out.push(bigram);
            names(bigram, &format!("{previous_word} {word}"));
        }
        previous = Some((fnv1a(unigram_hash, b" "), word.to_owned()));
    });
    out
}

fn end_word(unigram: u64, bigram: u64, prefix: &mut Option<u64>, out: &mut Vec<u32>) {
    out.push(slot(unigram));
    if prefix.is_some() {
        out.push(slot(bigram));
    }
    *prefix = Some(fnv1a(unigram, b" "));
}

/// What [`named_slots`] computes, without building any string: each word's bytes are hashed as
/// they are read, twice at once (alone, and after the previous word and a space).
fn fast_slots(text: &str) -> Vec<u32> {
    let mut out = Vec::with_capacity(text.len() / 3);
    let (mut unigram, mut bigram) = (FNV_OFFSET, 0u64);
    let mut in_word = false;
    // The previous word's hash with the space folded in; None before the first word.
    let mut prefix: Option<u64> = None;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let mut lowered = [0u8; 16];
        let piece: &[u8] = if b.is_ascii_alphanumeric() {
            i += 1;
            lowered[0] = b.to_ascii_lowercase();
            &lowered[..1]
        } else if b.is_ascii() {
            i += 1;
            if in_word {
                end_word(unigram, bigram, &mut prefix, &mut out);
                in_word = false;
            }
            continue;
        } else {
            // A non-ASCII character: decode it (text is valid UTF-8) and lowercase it as
            // `for_each_word` does.
            let c = text[i..].chars().next().unwrap_or(' ');
            i += c.len_utf8();
            if !c.is_alphanumeric() {
                if in_word {
                    end_word(unigram, bigram, &mut prefix, &mut out);
                    in_word = false;
                }
                continue;
            }
            let mut n = 0;
            for l in c.to_lowercase() {
                n += l.encode_utf8(&mut lowered[n..]).len();
            }
            &lowered[..n]
        };
        if !in_word {
            in_word = true;
            unigram = FNV_OFFSET;
            bigram = prefix.unwrap_or(0);
        }
        unigram = fnv1a(unigram, piece);
        bigram = fnv1a(bigram, piece);
    }
    if in_word {
        end_word(unigram, bigram, &mut prefix, &mut out);
    }
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

    #[test]
    fn the_fast_path_hashes_exactly_as_the_named_one() {
        for text in [
            "hello world",
            "  Été, ÇA va? x2 İstanbul ß ǅ ",
            "a",
            "",
            "one two three four",
        ] {
            let mut ignore = |_: u32, _: &str| {};
            assert_eq!(fast_slots(text), named_slots(text, &mut ignore), "{text:?}");
        }
    }
}
