-- Which build of the library installed these objects (botai db migrate
-- compares it with botai_build_id() of the library now loaded).
CREATE TABLE botai.installation (
    build_id     text        NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO botai.installation (build_id) VALUES (botai_build_id());
