-- A destroyed app's id is never given again: the builder keeps a repository per app id,
-- and an app made later under the same name must not find the old one's code there.
-- Postgres's identity never goes back; SQLite gives the highest id again once its row is
-- gone. So SQLite keeps the highest app id it ever gave here, and apps take the next one.
CREATE TABLE app_ids (last INTEGER NOT NULL);
INSERT INTO app_ids (last) SELECT COALESCE(MAX(id), 0) FROM apps;
CREATE TRIGGER app_ids_follow AFTER INSERT ON apps BEGIN
    UPDATE app_ids SET last = MAX(last, NEW.id);
END;
