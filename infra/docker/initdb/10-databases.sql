-- Run once by the postgres image on an empty volume: MLflow's database beside Prefect's
-- (POSTGRES_DB), owned by the compose user.
CREATE DATABASE mlflow OWNER sftops;
