-- Databases of the platform on the docker-compose PostgreSQL (run once, by the postgres
-- image's entrypoint, when the data volume is empty: docker-compose.yml mounts this
-- file into /docker-entrypoint-initdb.d/). The test database `test` is POSTGRES_DB.
--
-- A data volume created before this script was mounted does not run it: either
-- `docker compose down -v` (drops the data) or run it by hand once:
--   docker compose exec -T postgres psql -U postgres -f - < deploy/postgres-init.sql
--
-- Development credentials only (the compose PostgreSQL trusts every local connection);
-- deploy/README.md says how production databases are set up.
CREATE ROLE okr LOGIN PASSWORD 'okr';
CREATE DATABASE okr OWNER okr;               -- the event store (OKR_DATABASE_URL)
CREATE DATABASE okr_reporting OWNER okr;     -- OKR_REPORTING_DATABASE_URL
CREATE DATABASE okr_notification OWNER okr;  -- OKR_NOTIFICATION_DATABASE_URL
CREATE DATABASE okr_directory OWNER okr;     -- OKR_DIRECTORY_DATABASE_URL (people and teams)
CREATE DATABASE okr_gateway OWNER okr;       -- OKR_GATEWAY_DATABASE_URL (API key hashes)
