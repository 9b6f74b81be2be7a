"""Training as RecBole's ``Trainer`` runs it, made safe and resumable: plain-data checkpoint files
(:mod:`.checkpoint`), a checkpoint after every epoch and exact resumption (:mod:`.resume`),
multi-process training on CPUs (:mod:`.distributed`) and freed-memory reuse (:mod:`.allocator`).
:mod:`recbole_dien.compat` installs them on RecBole's classes."""
