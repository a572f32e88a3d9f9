//! An LLM's chat-completions stream as the pipeline reads it: any bytes through the SSE
//! decoder and the chunk assembler never panic; the steps are the same whether the body
//! comes whole or split in two anywhere; tool calls stay within their bounds with unique
//! ids; and any text the stream speaks goes through the sentence splitter without a
//! letter or digit lost.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_ua_agent::pipeline::wire::chat::{MAX_TOOL_BYTES, MAX_TOOL_CALLS};
use voice_ua_agent::pipeline::wire::{ChatStep, ChatStream, SentenceSplitter, SseDecoder};

/// The steps of a body given in pieces, or the first error as text.
fn read(pieces: &[&[u8]]) -> Result<Vec<ChatStep>, String> {
    let mut decoder = SseDecoder::new();
    let mut stream = ChatStream::new();
    let mut steps = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        decoder.push(piece);
        if i + 1 == pieces.len() {
            decoder.finish();
        }
        while let Some(event) = decoder.next_event() {
            let event = event.map_err(|e| e.to_string())?;
            steps.extend(stream.push_event(&event).map_err(|e| e.to_string())?);
        }
    }
    steps.extend(stream.finish());
    Ok(steps)
}

fuzz_target!(|data: &[u8]| {
    let whole = read(&[data]);
    let cut = data.first().map_or(0, |&b| usize::from(b)) % (data.len() + 1);
    let split = read(&[&data[..cut], &data[cut..]]);
    assert_eq!(whole, split, "the same body split at {cut}");
    let Ok(steps) = whole else { return };
    let mut splitter = SentenceSplitter::new();
    let mut said = String::new();
    let mut spoken = String::new();
    for step in &steps {
        match step {
            ChatStep::ToolCalls(calls) => {
                assert!(calls.len() <= MAX_TOOL_CALLS);
                let bytes: usize = calls.iter().map(|c| c.to_tool_call().arguments.len()).sum();
                assert!(bytes <= MAX_TOOL_BYTES + 2 * calls.len(), "{bytes}");
                for (i, c) in calls.iter().enumerate() {
                    assert!(!calls[..i].iter().any(|d| d.id == c.id), "repeated id {}", c.id);
                }
            }
            ChatStep::Text(t) => {
                said.push_str(t);
                splitter.push(t);
                while let Some(s) = splitter.next_sentence() {
                    spoken.push_str(&s);
                }
            }
            _ => {}
        }
    }
    if let Some(rest) = splitter.finish() {
        spoken.push_str(&rest);
    }
    let alnum = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).collect::<String>();
    assert_eq!(alnum(&said), alnum(&spoken), "the splitter lost or invented letters");
});
