"""Accounts that are the host's own users, managed over D-Bus, checked by PAM.

Two in-tree backends share this package: ``openbmc`` (OpenBMC's
phosphor-user-manager) and ``accountsservice`` (org.freedesktop.Accounts, as
on Debian and Raspberry Pi OS). Both authenticate through bmcd's PAM service
and reach the root helper (``helper.py``) for what bmcd may not do itself.
"""
