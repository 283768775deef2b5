pub mod live;
pub mod ready;
