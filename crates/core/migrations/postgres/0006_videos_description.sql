-- Issue 28: an admin edits a lesson's title and description. Existing lessons get an empty
-- description; the upload does not set one (an admin adds it afterwards).
ALTER TABLE videos ADD COLUMN description TEXT NOT NULL DEFAULT '';
