//! Integration tests: a real server on 127.0.0.1, a real WebSocket client speaking Twilio's protocol.

mod actor_tree;
mod bad_input;
mod call_flow;
mod call_management;
mod cartesia;
mod cloud_call;
mod conversation;
mod deepgram;
mod embedded;
mod eval;
mod guard;
mod layering;
mod lifecycle;
mod openai;
mod openapi;
mod postgres;
mod shutdown;
mod smart_turn;
mod spoken;
mod store;
mod supervision;
mod support;
mod surface;
mod twilio_emulator;
mod twilio_rest;
mod webhooks;
