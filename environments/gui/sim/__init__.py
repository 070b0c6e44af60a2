"""The pure-Python GUI tier: MiniWoB-style families over a simulated widget tree."""
