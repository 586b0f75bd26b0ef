//! The Canvas-shaped sandbox server.
