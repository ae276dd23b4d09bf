"""The sans-IO core: protocol layers that take (frame, now) and give frames out.

Nothing under tcpio.core reads a clock, sleeps, or touches a file descriptor.
"""
