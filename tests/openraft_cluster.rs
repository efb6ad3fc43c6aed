#![cfg(feature = "openraft")]
