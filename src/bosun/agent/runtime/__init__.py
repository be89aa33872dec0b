"""Runtime drivers behind one Protocol (base.py); the agent never knows which one it has."""
