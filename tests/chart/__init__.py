"""What the chart tests need: an offline render, KEDA's CRD schemas, and the env names the code reads."""
