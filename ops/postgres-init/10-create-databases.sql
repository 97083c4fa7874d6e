-- Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d), by psql
-- as POSTGRES_USER. Creates the three databases Driftline uses if they do not exist yet:
--   mlflow       MLflow tracking store   (TRACKING_BACKEND_URI)
--   mlflow_auth  MLflow basic-auth users (TRACKING_AUTH_DB_URI)
--   monitor      the monitor's store     (MONITOR_DATABASE_URL)
-- CREATE DATABASE cannot run inside a DO block, hence SELECT ... \gexec.
SELECT 'CREATE DATABASE mlflow'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow')\gexec

SELECT 'CREATE DATABASE mlflow_auth'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'mlflow_auth')\gexec

SELECT 'CREATE DATABASE monitor'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'monitor')\gexec
