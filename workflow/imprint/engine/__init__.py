"""Stage 2, engine: the IMPRINT framework (NORMpre, presampling, GEN, NORMpost, NORMinf, AGG) on embeddings."""
