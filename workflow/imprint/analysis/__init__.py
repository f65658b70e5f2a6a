"""Stage 3, analysis: neural collapse, critical-difference statistics and the tables behind figures."""
