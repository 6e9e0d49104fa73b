"""Code that runs inside crossbar's router worker: thin adapters over Broker's logic.

Only this package may import crossbar, Twisted or Autobahn's router side.
"""
