-- The botai extension. Who may use what is in repeatable/grants.sql,
-- applied after every migrate so it covers every object of the installed
-- version.
CREATE EXTENSION IF NOT EXISTS botai;
