//! The queue consumer's view of the runtime's `MessageBatch` and `Message`.
//!
//! The `worker` crate's own wrappers do not expose `Message.attempts`, which the increasing
//! retry delay and the dead-letter parking depend on, so the consumer binds the JavaScript
//! objects directly.

use wasm_bindgen::prelude::*;
use worker::js_sys;

#[wasm_bindgen]
extern "C" {
    /// A batch of messages from one queue.
    #[wasm_bindgen(extends = js_sys::Object)]
    #[derive(Debug, Clone)]
    pub type QueueBatch;

    /// The name of the queue the batch came from.
    #[wasm_bindgen(method, getter)]
    pub fn queue(this: &QueueBatch) -> String;

    /// The messages.
    #[wasm_bindgen(method, getter)]
    pub fn messages(this: &QueueBatch) -> js_sys::Array;

    /// One queue message.
    #[wasm_bindgen(extends = js_sys::Object)]
    #[derive(Debug, Clone)]
    pub type QueueMessage;

    /// The message id Cloudflare assigned.
    #[wasm_bindgen(method, getter)]
    pub fn id(this: &QueueMessage) -> String;

    /// The message body (a string: the worker sends text messages).
    #[wasm_bindgen(method, getter)]
    pub fn body(this: &QueueMessage) -> JsValue;

    /// How many times the message has been delivered, this delivery included.
    #[wasm_bindgen(method, getter)]
    pub fn attempts(this: &QueueMessage) -> u32;

    /// Acknowledges the message: it will not be delivered again.
    #[wasm_bindgen(method)]
    pub fn ack(this: &QueueMessage);

    #[wasm_bindgen(method, js_name = retry)]
    fn retry_with(this: &QueueMessage, options: &JsValue);
}

impl QueueBatch {
    /// The messages as typed handles.
    pub fn message_list(&self) -> Vec<QueueMessage> {
        self.messages()
            .iter()
            .map(|m| m.unchecked_into::<QueueMessage>())
            .collect()
    }
}

impl QueueMessage {
    /// Marks the message for another delivery after `delay_secs`.
    pub fn retry_after(&self, delay_secs: u32) {
        let options = js_sys::Object::new();
        js_sys::Reflect::set(
            &options,
            &JsValue::from_str("delaySeconds"),
            &JsValue::from(delay_secs),
        )
        .expect("setting a property on a fresh object cannot fail");
        self.retry_with(&options);
    }
}
