//! A pipeline configuration for the tests: all three stages at `url`, the defaults of a
//! local deployment (16 kHz STT, 24 kHz TTS, `#` ends a turn, 3 s timeouts); each test
//! changes what it is about.

use std::time::Duration;

use voice_ua_agent::pipeline::{LlmConfig, PipelineConfig, SttConfig, TtsConfig};
use voice_ua_media::EndpointSettings;

pub fn config(url: &str) -> PipelineConfig {
    let url = url.to_owned();
    PipelineConfig {
        stt: SttConfig {
            url: url.clone(),
            model: "whisper-1".into(),
            api_key: None,
            language: Some("en".into()),
            prompt: None,
            sample_rate: 16000,
            timeout: Duration::from_secs(3),
        },
        llm: LlmConfig {
            url: url.clone(),
            model: "llama3.2".into(),
            api_key: None,
            temperature: None,
            max_tokens: None,
            tool_choice: None,
            first_token_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(3),
            prices: None,
        },
        tts: TtsConfig {
            url,
            model: "kokoro".into(),
            voice: "af_heart".into(),
            api_key: None,
            sample_rate: 24000,
            send_sample_rate: false,
            speed: None,
            instructions: None,
            first_byte_timeout: Duration::from_secs(3),
        },
        turn: EndpointSettings::default(),
        end_of_turn_key: Some('#'),
        instructions: "You answer the gate.".into(),
        greeting: None,
        functions: Vec::new(),
        max_history_messages: 24,
        max_tool_rounds: 4,
        extra_ca_file: None,
    }
}
