//! Registration lost and regained: what a modem in poor coverage does and says.

use super::{ModemHandle, Unsolicited};

impl ModemHandle {
    /// The modem loses its cell (coverage gone): the registration stat becomes `stat`
    /// (2 searching, 0 not searching), announced as `+CEREG: <stat>` only if the host
    /// enabled the notice with `AT+CEREG=1` (the power-on setting 0 sends nothing; the host
    /// learns it from `AT+CEREG?`). The PDP context is lost with it, as
    /// [`ModemHandle::network_lost`] describes; opening the packet network fails until
    /// [`ModemHandle::reattach`].
    pub fn deregister(&self, stat: u8) {
        {
            let mut core = self.shared.lock();
            if !core.registered() {
                return;
            }
            core.reg_stat = stat;
            core.stats.deregistrations += 1;
            if core.booted && core.cereg_mode == 1 {
                self.shared
                    .queue(&mut core, Unsolicited::Line(format!("+CEREG: {stat}")));
            }
        }
        self.network_lost();
    }

    /// The modem finds a cell and registers again (`+CEREG: 1` with `AT+CEREG=1`). The PDP
    /// context stays down: the host opens the packet network again.
    pub fn reattach(&self) {
        let mut core = self.shared.lock();
        if core.registered() {
            return;
        }
        core.reg_stat = 1;
        core.stats.reattaches += 1;
        if core.booted && core.cereg_mode == 1 {
            self.shared.queue(&mut core, Unsolicited::Line("+CEREG: 1".into()));
        }
    }
}
