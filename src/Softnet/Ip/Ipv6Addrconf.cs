using System.Buffers.Binary;
using Softnet.Link;
using Softnet.Neigh;
using Softnet.Packets;
using Softnet.Packets.Headers;

namespace Softnet.Ip;

/// <summary>
/// What a Linux host sends when IPv6 comes up on a device (net/ipv6/addrconf.c, mcast.c, ndisc.c): MLD reports for
/// the groups it joins, duplicate address detection for each tentative address, router solicitations once the
/// link-local address is usable. <see cref="BringUp(NetStack, Device)"/> starts it at the stack's clock; the
/// stack's timers (<see cref="NetStack.AdvanceClock"/>) send the rest. The kernel's random delays
/// (get_random_u32_below) are drawn from a fixed-seed generator, so a run repeats itself; the kernel's values,
/// and so the exact times, differ. Addresses are usable in Softnet's datapath at once (the tentative state only
/// shapes what is sent here).
/// <para>No MLD sysctl silences a device that has an address: its solicited-node group is always reported (qrv times,
/// then qrv times again once the link-local address is valid); a quiet host is one without addresses on the link
/// (addr_gen_mode 1 and none configured), with accept_dad 0 and router_solicitations 0. A replay starts from the
/// settled state (what a kernel harness waits for); an address made later (SLAAC) goes through DAD and MLD from it.
/// The kernel can lose the very first reports to the noop qdisc when addrconf sends before linkwatch activated the
/// device (a race Softnet does not model; Ipv6BringUpKernelTests gives the link carrier last to avoid it).</para>
/// </summary>
public sealed class Ipv6Addrconf
{
    private const long Jiffy = 1_000_000_000L / Icmpv6.Hz;
    /// <summary>MLD_QRV_DEFAULT: the robustness variable (idev->mc_qrv) until a querier says otherwise.</summary>
    private const int Qrv = 2;
    private const byte MldV1Report = 131, MldV2Report = 143, RouterSolicitation = 133;
    private const byte Mld2ChangeToExclude = 4;
    private const byte OptNonce = 14;
    /// <summary>ff02::16, all MLDv2-capable routers.</summary>
    private static readonly UInt128 AllMldv2Routers = Ipv6.Make(0xff02_0000_0000_0000UL, 0x16);
    private static readonly UInt128 SiteAllRouters = Ipv6.Make(0xff05_0000_0000_0000UL, 2);

    private readonly List<Idev> _devs = new();
    private ulong _rng = 0x9E37_79B9_7F4A_7C15UL;

    /// <summary>The earliest armed timer (long.MaxValue: none).</summary>
    internal long Due = long.MaxValue;

    /// <summary>A joined group (struct ifmcaddr6): users, the change records still owed (mca_crcount), MLDv1's
    /// per-group report timer.</summary>
    private sealed class Group(UInt128 address)
    {
        public readonly UInt128 Address = address;
        public int Users = 1;
        public int CrCount;
        public long V1Due = long.MaxValue;
        /// <summary>MAF_NOREPORT: ff02::1 and groups of a scope narrower than link-local are never reported.</summary>
        public bool NoReport => Address == Ipv6.AllNodes || Ipv6.MulticastScope(Address) < 2;
    }

    /// <summary>An address in DAD (struct inet6_ifaddr): its remaining probes and the work's next run.</summary>
    private sealed class Ifa(Inet6Address a)
    {
        public readonly Inet6Address A = a;
        public bool Tentative = true;
        public int Probes;
        public long Due = long.MaxValue;
        public bool Kicked;
        public ulong Nonce;
    }

    /// <summary>struct inet6_dev's bring-up state: groups (newest first, as idev->mc_list), addresses, the MLDv2
    /// interface-change timer (mc_ifc_work) and DAD-complete timer (mc_dad_work), router solicitation.</summary>
    private sealed class Idev(Device dev)
    {
        public readonly Device Dev = dev;
        public readonly List<Group> Groups = new();
        public readonly List<Ifa> Addrs = new();
        public int IfcCount, DadCount;
        public long IfcDue = long.MaxValue, McDadDue = long.MaxValue, RsDue = long.MaxValue;
        public int RsProbes;
        public long RsInterval;
        /// <summary>IF_RA_RCVD: a router advertisement came; solicitations stop.</summary>
        public bool RaReceived;
    }

    /// <summary>The net.ipv6.conf.*.KEY names bring-up and router advertisements (<see cref="Neigh.NdiscRouter"/>) read,
    /// for the loader's "set, not modelled" list. Optimistic DAD, stable-privacy and temporary addresses are not
    /// modelled.</summary>
    public static bool Honours(string key) => key is "accept_dad" or "dad_transmits" or "enhanced_dad" or "accept_ra"
        or "router_solicitations" or "router_solicitation_interval" or "router_solicitation_delay" or "router_solicitation_max_interval"
        or "mldv1_unsolicited_report_interval" or "mldv2_unsolicited_report_interval" or "force_mld_version"
        or "accept_ra_defrtr" or "accept_ra_from_local" or "accept_ra_min_lft" or "accept_ra_min_hop_limit" or "accept_ra_mtu"
        or "accept_ra_pinfo" or "autoconf";

    /// <summary>Frames sent so far, by kind, for reports and tests.</summary>
    public int MldReports, DadSolicitations, RouterSolicitations;

    /// <summary>Brings IPv6 up on every device of every namespace that is up with carrier (the order of `ip link set
    /// up` in the scenario: namespaces, then devices, as listed).</summary>
    public static Ipv6Addrconf BringUpAll(NetStack stack)
    {
        var ac = stack.Addrconf6 ??= new Ipv6Addrconf();
        foreach (var ns in stack.Namespaces)
            foreach (var dev in ns.Devices)
                ac.Up(stack, dev);
        return ac;
    }

    /// <summary>addrconf_notify(NETDEV_UP) for <paramref name="dev"/> at the stack's clock.</summary>
    public static Ipv6Addrconf BringUp(NetStack stack, Device dev)
    {
        var ac = stack.Addrconf6 ??= new Ipv6Addrconf();
        ac.Up(stack, dev);
        return ac;
    }

    private void Up(NetStack stack, Device dev)
    {
        var ns = dev.Namespace;
        // addrconf_link_ready and the device types addrconf configures; loopback sends nothing.
        if (dev.Kind.IsLoopback || !dev.Carrier || ns.Ipv6Disabled(dev) || dev.Mtu < Icmpv6.MinMtu) return;
        if (_devs.Exists(d => d.Dev == dev)) return;
        var idev = new Idev(dev);
        _devs.Add(idev);
        long now = stack.Now;
        DeviceGroups(stack, idev, now);
        // Addresses configured while the device was down joined their solicited-node groups then (addrconf_dad_begin
        // ran at once and waits for IF_READY unless it skipped DAD).
        foreach (var a in ns.ConfiguredAddresses6)
            if (a.Device == dev)
            {
                var ifa = new Ifa(a);
                idev.Addrs.Add(ifa);
                Join(stack, idev, Ipv6.SolicitedNode(a.Address), now, up: false);
                if (SkipsDad(ns, dev, a)) Completed(stack, idev, ifa, now, devUp: false);
            }
        // ipv6_mc_up: the groups joined so far are reported now that the device is up.
        foreach (var g in idev.Groups.ToArray()) GroupAdded(stack, idev, g, now);
        // addrconf_dev_config → addrconf_addr_gen: the EUI-64 link-local address (addr_gen_mode 0), then
        // addrconf_dad_run kicks the configured addresses still tentative.
        if (ns.Conf6(dev, "addr_gen_mode", 0) == 0)
        {
            var ll = new Ifa(new Inet6Address(dev, Ipv6.LinkLocalFromMac(dev.Mac), 64, false, Kernel: true));
            idev.Addrs.Insert(0, ll);
            DadBegin(stack, idev, ll, now);
        }
        foreach (var ifa in idev.Addrs)
            if (ifa.Tentative && !ifa.Kicked) DadKick(stack, idev, ifa, now);
        Rearm();
    }

    /// <summary>ipv6_add_dev: ff01::1 and ff02::1, and ff02::2 when forwarding. A forwarding value written to the device
    /// itself (directly or through conf.all) went through dev_forward_change, which also joins ff01::2 and ff05::2.</summary>
    private void DeviceGroups(NetStack stack, Idev idev, long now)
    {
        var dev = idev.Dev;
        var ns = dev.Namespace;
        Join(stack, idev, Ipv6.Make(0xff01_0000_0000_0000UL, 1), now, up: false);
        Join(stack, idev, Ipv6.AllNodes, now, up: false);
        if (!ns.DeviceForwarding6(dev)) return;
        Join(stack, idev, Ipv6.AllRouters, now, up: false);
        if (ns.Sysctl($"net.ipv6.conf.{dev.Name}.forwarding") != null)
        {
            Join(stack, idev, Ipv6.Make(0xff01_0000_0000_0000UL, 2), now, up: false);
            Join(stack, idev, SiteAllRouters, now, up: false);
        }
    }

    /// <summary>The device's state, or (IPv6 came up before the replay, as a harness waits for it) the state long after
    /// its bring-up: groups joined and reported, addresses valid, solicitation over. Null where IPv6 is not up.</summary>
    private Idev? Settled(NetStack stack, Device dev)
    {
        var idev = _devs.Find(d => d.Dev == dev);
        if (idev != null) return idev;
        var ns = dev.Namespace;
        if (dev.Kind.IsLoopback || !dev.Carrier || ns.Ipv6Disabled(dev)) return null;
        idev = new Idev(dev);
        _devs.Add(idev);
        DeviceGroups(stack, idev, 0);
        foreach (var a in ns.Addresses6)
            if (a.Device == dev)
            {
                idev.Addrs.Add(new Ifa(a) { Tentative = false, Kicked = true });
                Join(stack, idev, Ipv6.SolicitedNode(a.Address), 0, up: false);
                if (ns.DeviceForwarding6(dev) && a.PrefixLength < 127 && a.Network != 0)
                    Join(stack, idev, Ipv6.SolicitedNode(a.Network), 0, up: false);
            }
        return idev;
    }

    /// <summary>An address the host made itself on an up device (addrconf_prefix_rcv_add_addr: SLAAC):
    /// addrconf_dad_start, so its solicited-node group is reported and DAD runs as the sysctls say.</summary>
    internal static void AddressAdded(NetStack stack, Inet6Address a)
    {
        var ac = stack.Addrconf6 ??= new Ipv6Addrconf();
        if (ac.Settled(stack, a.Device) is not { } idev) return;
        var ifa = new Ifa(a);
        idev.Addrs.Add(ifa);
        ac.DadBegin(stack, idev, ifa, stack.Now);
        ac.Rearm();
    }

    /// <summary>addrconf_dad_begin's first test: no DAD on a NOARP device, when neither conf.all nor the device has
    /// accept_dad, or for a nodad address.</summary>
    private static bool SkipsDad(Namespace ns, Device dev, Inet6Address a)
        => a.NoDad || ns.SysctlValue("net.ipv6.conf.all.accept_dad", 0) < 1 && ns.Conf6(dev, "accept_dad", 1) < 1;

    /// <summary>addrconf_dad_begin: join the solicited-node group, then DAD or its completion at once.</summary>
    private void DadBegin(NetStack stack, Idev idev, Ifa ifa, long now)
    {
        Join(stack, idev, Ipv6.SolicitedNode(ifa.A.Address), now, up: true);
        if (SkipsDad(idev.Dev.Namespace, idev.Dev, ifa.A)) { Completed(stack, idev, ifa, now, devUp: true); return; }
        DadKick(stack, idev, ifa, now);
    }

    /// <summary>addrconf_dad_kick: dad_transmits probes after a random delay below rtr_solicit_delay, with a nonce
    /// (enhanced_dad).</summary>
    private void DadKick(NetStack stack, Idev idev, Ifa ifa, long now)
    {
        var ns = idev.Dev.Namespace;
        ifa.Kicked = true;
        long delay = Math.Max(1, SecondsToJiffies(ns.Conf6(idev.Dev, "router_solicitation_delay", 1)));
        ifa.Probes = ns.Conf6(idev.Dev, "dad_transmits", 1);
        ifa.Nonce = 0;
        if (ns.Conf6(idev.Dev, "enhanced_dad", 1) != 0 || ns.SysctlValue("net.ipv6.conf.all.enhanced_dad", 1) != 0)
            while (ifa.Nonce == 0) ifa.Nonce = Next() & 0xFFFF_FFFF_FFFFUL;
        ifa.Due = now + Below(delay) * Jiffy;
    }

    /// <summary>addrconf_dad_work: a probe to the solicited-node group from ::, every retrans_time, then success
    /// once they are all sent.</summary>
    private void DadWork(NetStack stack, Idev idev, Ifa ifa)
    {
        long now = ifa.Due;
        if (ifa.Probes <= 0)
        {
            ifa.Due = long.MaxValue;
            Completed(stack, idev, ifa, now, devUp: true);
            return;
        }
        ifa.Probes--;
        ifa.Due = now + Math.Max(NeighbourTable.RetransNs, Icmpv6.Hz / 100 * Jiffy);
        SendDadNs(stack, idev.Dev, ifa.A.Address, ifa.Nonce);
    }

    /// <summary>addrconf_dad_completed: the address is usable; for the first link-local address the MLD reports go
    /// again from it (ipv6_mc_dad_complete) and, when router advertisements are accepted, router solicitation starts;
    /// a forwarding device joins the prefix's subnet-router anycast (addrconf_join_anycast). An address added while the
    /// device was down and exempt from DAD completes then: its groups wait for ipv6_mc_up, nothing is sent.</summary>
    private void Completed(NetStack stack, Idev idev, Ifa ifa, long now, bool devUp)
    {
        var dev = idev.Dev;
        var ns = dev.Namespace;
        ifa.Tentative = false;
        ifa.Kicked = true;
        bool link = Ipv6.IsLinkLocal(ifa.A.Address);
        bool lonely = link && !idev.Addrs.Exists(o => o != ifa && !o.Tentative && Ipv6.IsLinkLocal(o.A.Address));
        if (ns.DeviceForwarding6(dev) && ifa.A.PrefixLength < 127 && ifa.A.Network != 0)
            Join(stack, idev, Ipv6.SolicitedNode(ifa.A.Network), now, up: devUp);
        if (!lonely || !devUp) return;
        McDadComplete(stack, idev, now);
        int solicits = ns.Conf6(dev, "router_solicitations", -1);
        if (!AcceptRa(ns, dev) || solicits == 0 || idev.RaReceived) return;
        var lladdr = LinkLocal(idev);
        if (lladdr == 0) return;
        SendRs(stack, dev, lladdr);
        idev.RsInterval = BackoffInit(SecondsToJiffies(ns.Conf6(dev, "router_solicitation_interval", 4)));
        idev.RsProbes = 1;
        idev.RsDue = now + idev.RsInterval * Jiffy;
    }

    /// <summary>ipv6_accept_ra: accept_ra 1 on a host, 2 also while forwarding.</summary>
    public static bool AcceptRa(Namespace ns, Device dev)
    {
        int ra = ns.Conf6(dev, "accept_ra", 1);
        return ns.DeviceForwarding6(dev) ? ra == 2 : ra != 0;
    }

    /// <summary>addrconf_rs_timer: another solicitation while probes remain (router_solicitations −1: for ever), the
    /// interval doubling up to router_solicitation_max_interval; the wait after the last is rtr_solicit_delay.</summary>
    private void RsTimer(NetStack stack, Idev idev)
    {
        var dev = idev.Dev;
        var ns = dev.Namespace;
        long now = idev.RsDue;
        idev.RsDue = long.MaxValue;
        if (idev.RaReceived) return;
        int solicits = ns.Conf6(dev, "router_solicitations", -1);
        if (!(idev.RsProbes++ < solicits || solicits < 0)) return;
        var lladdr = LinkLocal(idev);
        if (lladdr == 0) return;
        SendRs(stack, dev, lladdr);
        idev.RsInterval = BackoffUpdate(idev.RsInterval, SecondsToJiffies(ns.Conf6(dev, "router_solicitation_max_interval", 3600)));
        long next = idev.RsProbes == solicits ? SecondsToJiffies(ns.Conf6(dev, "router_solicitation_delay", 1)) : idev.RsInterval;
        idev.RsDue = now + next * Jiffy;
    }

    /// <summary>A router advertisement was accepted on <paramref name="dev"/> (IF_RA_RCVD): no more solicitations.</summary>
    internal void RaReceived(Device dev)
    {
        foreach (var d in _devs)
            if (d.Dev == dev) { d.RaReceived = true; d.RsDue = long.MaxValue; }
    }

    /// <summary>rfc3315_s14_backoff_init: the initial interval times a random factor in [0.9, 1.1].</summary>
    private long BackoffInit(long irt) => (900_000 + Below(200_001)) * irt / 1_000_000;

    /// <summary>rfc3315_s14_backoff_update: doubled times [0.95, 1.05], past the maximum the maximum times [0.9, 1.1].</summary>
    private long BackoffUpdate(long rt, long mrt)
    {
        long t = (1_900_000 + Below(200_001)) * rt / 1_000_000;
        if (t > mrt) t = (900_000 + Below(200_001)) * mrt / 1_000_000;
        return t;
    }

    // ---------------- MLD (mcast.c) ----------------

    /// <summary>ipv6_dev_mc_inc: a new group, or one more user of a joined one; reported when <paramref name="up"/>
    /// (igmp6_group_added), else at ipv6_mc_up.</summary>
    private void Join(NetStack stack, Idev idev, UInt128 group, long now, bool up)
    {
        var g = idev.Groups.Find(x => x.Address == group);
        if (g != null) { g.Users++; return; }
        g = new Group(group);
        idev.Groups.Insert(0, g);
        if (up) GroupAdded(stack, idev, g, now);
    }

    /// <summary>igmp6_group_added on an up device: MLDv1 reports the group at once and again after a random delay
    /// (igmp6_join_group); MLDv2 owes qrv change records, sent by the interface-change timer (mld_ifc_event).</summary>
    private void GroupAdded(NetStack stack, Idev idev, Group g, long now)
    {
        if (g.NoReport) return;
        if (V1Mode(idev))
        {
            SendV1(stack, idev, g.Address);
            long delay = Below(ReportInterval(idev)) * Jiffy;
            // A timer already running keeps its expiry.
            if (g.V1Due == long.MaxValue) g.V1Due = now + delay;
            return;
        }
        g.CrCount = Qrv;
        idev.IfcCount = Qrv;
        idev.IfcDue = now + (Below(1) + 2) * Jiffy;
    }

    /// <summary>mld_ifc_work (<paramref name="initial"/> false: the change records owed) and mld_dad_work (true: every
    /// group's state): a report, again after a random part of the unsolicited report interval while the count lasts.</summary>
    private void ReportWork(NetStack stack, Idev idev, bool initial)
    {
        ref long due = ref initial ? ref idev.McDadDue : ref idev.IfcDue;
        ref int count = ref initial ? ref idev.DadCount : ref idev.IfcCount;
        long now = due;
        due = long.MaxValue;
        SendV2(stack, idev, initial);
        if (count > 0 && --count > 0) due = now + (Below(ReportInterval(idev)) + 2) * Jiffy;
    }

    /// <summary>ipv6_mc_dad_complete: the current state of every group, from the now valid link-local source, qrv
    /// times (mld_send_initial_cr now, then <see cref="ReportWork"/>).</summary>
    private void McDadComplete(NetStack stack, Idev idev, long now)
    {
        idev.DadCount = Qrv;
        SendV2(stack, idev, initial: true);
        if (--idev.DadCount > 0) idev.McDadDue = now + (Below(ReportInterval(idev)) + 2) * Jiffy;
    }

    /// <summary>mld_in_v1_mode without a querier: force_mld_version 2 on conf.all or the device wins, then 1.</summary>
    private static bool V1Mode(Idev idev)
    {
        var ns = idev.Dev.Namespace;
        int all = ns.SysctlValue("net.ipv6.conf.all.force_mld_version", 0), dev = ns.Conf6(idev.Dev, "force_mld_version", 0);
        if (all == 2 || dev == 2) return false;
        return all == 1 || dev == 1;
    }

    /// <summary>unsolicited_report_interval in jiffies: mldv1_ or mldv2_unsolicited_report_interval (ms), at least 1.</summary>
    private static long ReportInterval(Idev idev)
    {
        var ns = idev.Dev.Namespace;
        int ms = V1Mode(idev) ? ns.Conf6(idev.Dev, "mldv1_unsolicited_report_interval", 10_000) : ns.Conf6(idev.Dev, "mldv2_unsolicited_report_interval", 1000);
        long j = ((long)ms * Icmpv6.Hz + 999) / 1000;
        return j > 0 ? j : 1;
    }

    // ---------------- timers ----------------

    /// <summary>Runs every bring-up timer due up to <paramref name="nowNs"/>, earliest first, each at its own time.</summary>
    internal void Run(NetStack stack, long nowNs)
    {
        for (int guard = 0; guard < 100_000 && Due <= nowNs; guard++)
        {
            long t = Due;
            stack.SetClock(t);
            foreach (var d in _devs)
            {
                if (d.IfcDue == t) ReportWork(stack, d, initial: false);
                if (d.McDadDue == t) ReportWork(stack, d, initial: true);
                foreach (var g in d.Groups)
                    if (g.V1Due == t)
                    {
                        g.V1Due = long.MaxValue;
                        if (V1Mode(d)) SendV1(stack, d, g.Address);
                    }
                for (int i = 0; i < d.Addrs.Count; i++)
                    if (d.Addrs[i].Due == t) DadWork(stack, d, d.Addrs[i]);
                if (d.RsDue == t) RsTimer(stack, d);
            }
            stack.Drain();
            Rearm();
        }
    }

    private void Rearm()
    {
        long due = long.MaxValue;
        foreach (var d in _devs)
        {
            due = Math.Min(due, Math.Min(d.IfcDue, Math.Min(d.McDadDue, d.RsDue)));
            foreach (var g in d.Groups) due = Math.Min(due, g.V1Due);
            foreach (var a in d.Addrs) due = Math.Min(due, a.Due);
        }
        Due = due;
    }

    // ---------------- frames ----------------

    /// <summary>ipv6_get_lladdr(dev, IFA_F_TENTATIVE): the device's usable link-local address, or 0.</summary>
    private static UInt128 LinkLocal(Idev idev)
    {
        foreach (var a in idev.Addrs)
            if (!a.Tentative && Ipv6.IsLinkLocal(a.A.Address)) return a.A.Address;
        return 0;
    }

    /// <summary>ndisc_send_ns for DAD: from :: to the solicited-node group, no link-layer option, the nonce option.</summary>
    private void SendDadNs(NetStack stack, Device dev, UInt128 target, ulong nonce)
    {
        var skb = stack.NewFrame(40 + 24 + (nonce != 0 ? 8 : 0));
        if (skb == null) { dev.Namespace.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var daddr = Ipv6.SolicitedNode(target);
        var m = Ndisc.Write(skb, 0, daddr, Icmpv6View.NeighborSolicitation, 0, target);
        if (nonce != 0)
        {
            m[24] = OptNonce;
            m[25] = 1;
            for (int i = 0; i < 6; i++) m[26 + i] = (byte)(nonce >> (8 * i));
        }
        Finish(skb, 40);
        DadSolicitations++;
        Ndisc.SendSkb(stack, dev, skb, Icmpv6View.NeighborSolicitation, daddr);
    }

    /// <summary>ndisc_send_rs: to ff02::2 from the link-local address with the source link-layer option.</summary>
    private void SendRs(NetStack stack, Device dev, UInt128 saddr)
    {
        var skb = stack.NewFrame(40 + 16);
        if (skb == null) { dev.Namespace.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var m = Header(skb, saddr, Ipv6.AllRouters, IpProtocols.Icmpv6, 255, 16);
        m[..8].Clear();
        m[0] = RouterSolicitation;
        Ndisc.WriteLlOption(m[8..], Ndisc.OptSourceLl, dev.Mac);
        Finish(skb, 40);
        RouterSolicitations++;
        Ndisc.SendSkb(stack, dev, skb, RouterSolicitation, Ipv6.AllRouters);
    }

    /// <summary>igmp6_send(ICMPV6_MGM_REPORT): an MLDv1 report to the group itself.</summary>
    private void SendV1(NetStack stack, Idev idev, UInt128 group)
    {
        var skb = stack.NewFrame(40 + 8 + 24);
        if (skb == null) { idev.Dev.Namespace.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var m = McHeader(skb, LinkLocal(idev), group, 24);
        m[..24].Clear();
        m[0] = MldV1Report;
        Ipv6.Write(m[8..], group);
        Finish(skb, 48);
        MldReports++;
        Ndisc.SendSkb(stack, idev.Dev, skb, MldV1Report, group);
    }

    /// <summary>mld_send_cr (the change records owed, each owed one fewer time) or mld_send_initial_cr (every
    /// reported group): CHANGE_TO_EXCLUDE records without sources for the kernel's own groups, in one MLDv2 report
    /// to ff02::16; nothing when there is no record.</summary>
    private void SendV2(NetStack stack, Idev idev, bool initial)
    {
        if (V1Mode(idev)) return;
        int n = 0;
        foreach (var g in idev.Groups)
            if (!g.NoReport && (initial || g.CrCount > 0)) n++;
        if (n == 0) return;
        var skb = stack.NewFrame(40 + 8 + 8 + 20 * n);
        if (skb == null) { idev.Dev.Namespace.Counters.Drops.Add(DropReason.SkbAllocFailed); return; }
        var m = McHeader(skb, LinkLocal(idev), AllMldv2Routers, 8 + 20 * n);
        m[..8].Clear();
        m[0] = MldV2Report;
        BinaryPrimitives.WriteUInt16BigEndian(m[6..], (ushort)n);
        int o = 8;
        foreach (var g in idev.Groups)
        {
            if (g.NoReport || !initial && g.CrCount == 0) continue;
            if (!initial) g.CrCount--;
            m[o] = Mld2ChangeToExclude;
            m[o + 1] = 0;
            m[o + 2] = m[o + 3] = 0;
            Ipv6.Write(m[(o + 4)..], g.Address);
            o += 20;
        }
        Finish(skb, 48);
        MldReports++;
        Ndisc.SendSkb(stack, idev.Dev, skb, MldV2Report, AllMldv2Routers);
    }

    /// <summary>ip6_mc_hdr with the router alert hop-by-hop option (mld_newpack, igmp6_send): hop limit 1. Returns the
    /// ICMPv6 message.</summary>
    private static Span<byte> McHeader(Skb skb, UInt128 saddr, UInt128 daddr, int icmpLength)
    {
        var h = Header(skb, saddr, daddr, 0, 1, 8 + icmpLength);
        h[0] = IpProtocols.Icmpv6;
        h[1] = 0;
        h[2] = 5; // IPV6_TLV_ROUTERALERT, value 0: MLD
        h[3] = 2;
        h[4] = h[5] = 0;
        h[6] = 1; // PadN
        h[7] = 0;
        return h[8..];
    }

    /// <summary>The IPv6 header (traffic class and flow label 0) at the frame's start; returns what follows it.</summary>
    private static Span<byte> Header(Skb skb, UInt128 saddr, UInt128 daddr, byte next, byte hop, int payload)
    {
        var p = skb.LinearData;
        Span<byte> s = stackalloc byte[16], d = stackalloc byte[16];
        Ipv6.Write(s, saddr);
        Ipv6.Write(d, daddr);
        Ipv6View.Write(p, payload, next, hop, s, d);
        skb.ResetNetworkHeader();
        return p[40..];
    }

    /// <summary>The ICMPv6 checksum of the message at <paramref name="icmpOffset"/>.</summary>
    private static void Finish(Skb skb, int icmpOffset)
    {
        var p = skb.LinearData;
        var m = p[icmpOffset..];
        m[2] = m[3] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(m[2..], Checksum.Compute(m, Checksum.PseudoHeaderV6(p[8..24], p[24..40], IpProtocols.Icmpv6, m.Length)));
    }

    // ---------------- random ----------------

    private static long SecondsToJiffies(int s) => (long)s * Icmpv6.Hz;

    private ulong Next()
    {
        // xorshift64: a fixed-seed stand-in for get_random_*.
        ulong x = _rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        _rng = x;
        return x;
    }

    /// <summary>get_random_u32_below(<paramref name="n"/>).</summary>
    private long Below(long n) => n <= 1 ? 0 : (long)(((Next() >> 32) * (ulong)n) >> 32);
}
