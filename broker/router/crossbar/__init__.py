"""Every reach into crossbar's, autobahn's and Twisted's internals, behind one version check.

:mod:`.versions` names the exact versions the patches were written for;
``broker run`` refuses any other.
"""
