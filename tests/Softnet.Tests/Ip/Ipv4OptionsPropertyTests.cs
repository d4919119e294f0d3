using CsCheck;
using Softnet.Ip;
using Softnet.Packets;
using Softnet.Tests.Topology;
using Xunit;
using static Softnet.Tests.Netfilter.PacketBuilder;
using static Softnet.Tests.Topology.ScenarioRig;

namespace Softnet.Tests.Ip;

/// <summary>Whatever the option bytes, ip_options_compile and what follows it never throw: a header is either accepted
/// (every noted option inside it, an answer built inside its room) or refused with a pointer inside the options; on the
/// path every datagram is delivered, forwarded or dropped with a counted reason.</summary>
public class Ipv4OptionsPropertyTests
{
    private static readonly byte[] Types = [0, 1, 7, 68, 131, 137, 148, 134, 130, 136, 0x44, 0x07, 25, 255];

    /// <summary>Option-shaped bytes: known types with lengths and pointers near the interesting edges, or noise.</summary>
    private static readonly Gen<byte[]> OptionBytes = Gen.OneOf(
        Gen.Byte.Array[0, 40],
        Gen.Select(Gen.Int[0, Types.Length - 1], Gen.Int[0, 14], Gen.Int[0, 14], Gen.Byte, Gen.Byte.Array[0, 36]).Array[1, 5]
            .Select(parts =>
            {
                var b = new List<byte>();
                foreach (var (t, len, ptr, flags, body) in parts)
                {
                    b.Add(Types[t]);
                    if (Types[t] is 0 or 1) continue;
                    b.Add((byte)(len < 12 ? len : 2 + body.Length));
                    b.Add((byte)(ptr < 12 ? ptr : 4 + 4 * (ptr - 12)));
                    b.Add(flags);
                    b.AddRange(body);
                }
                return b.Take(40).ToArray();
            }));

    internal static byte[] Header(byte[] options)
    {
        var h = Ipv4OptionsCompileTests.Header(options);
        return h;
    }

    [Fact]
    public void Compile_echo_build_and_fragment_never_throw()
    {
        OptionBytes.Sample(options =>
        {
            var h = Header(options);
            int hl = h.Length;
            var opt = default(IpOptions);
            bool ok = Ipv4Options.Compile(h, ref opt, 0x0A000001, 12345, null, out int problem);
            Assert.Equal(hl - 20, opt.OptLen);
            foreach (int at in new int[] { opt.Rr, opt.Ts, opt.Srr, opt.RouterAlert, opt.Cipso })
                Assert.True(at == 0 || (at >= 20 && at < hl), $"option offset {at} outside 20..{hl}");
            if (!ok)
            {
                Assert.InRange(problem, 20, hl - 1);
                return;
            }
            var data = new byte[Ipv4Options.MaxLength];
            if (Ipv4Options.Echo(h, opt, null, data, out var dopt))
            {
                Assert.Equal(0, dopt.OptLen & 3);
                Assert.InRange(dopt.OptLen, 0, Ipv4Options.MaxLength);
                var answer = new byte[20 + dopt.OptLen];
                Ipv4Options.Build(answer, dopt, data, 0x0A000002, 0x0A000001, 1);
            }
            var copy = (byte[])h.Clone();
            Ipv4Options.Fragment(copy, hl - 20);
            Assert.Equal(h[..20], copy[..20]);
        }, iter: 50000);
    }

    [Fact]
    public void Echo_build_and_forward_never_throw_even_for_options_compiled_elsewhere()
    {
        // Offsets and flags that no compile of this header produced (the guards, not the kernel's logic, are tested).
        Gen.Select(Gen.Byte.Array[0, 40], Gen.Byte.Array[5], Gen.Int[0, 63]).Sample((options, at, flags) =>
        {
            var h = Header(options);
            var opt = new IpOptions
            {
                OptLen = (byte)(h.Length - 20), Rr = at[0], Ts = at[1], Srr = at[2], Cipso = at[3], RouterAlert = at[4],
                RrNeedAddr = (flags & 1) != 0, TsNeedAddr = (flags & 2) != 0, TsNeedTime = (flags & 4) != 0,
                SrrIsHit = (flags & 8) != 0, IsStrictRoute = (flags & 16) != 0, IsChanged = (flags & 32) != 0,
            };
            var data = new byte[Ipv4Options.MaxLength];
            if (Ipv4Options.Echo(h, opt, null, data, out var dopt))
                Ipv4Options.Build(new byte[20 + dopt.OptLen], dopt, data, 1, 2, 3);
            Ipv4Options.Build(new byte[20 + (opt.OptLen & ~3)], opt with { OptLen = (byte)(opt.OptLen & ~3) }, new byte[40], 1, 2, 3);
            Ipv4Options.Forward(h, ref opt, 0x0A000001);
        }, iter: 50000);
    }

    [Fact]
    public void Random_options_on_the_router_path_are_delivered_forwarded_or_dropped_with_a_reason()
    {
        var rig = new ScenarioRig("router", new Dictionary<string, string>
        {
            ["ns/r/sysctl.conf"] = "net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.send_redirects = 0\nnet.ipv4.conf.all.accept_source_route = 1\n",
        });
        var ns = rig.Ns("r");
        string[] dsts = ["10.1.0.1", "10.2.0.1", "10.2.0.2", "10.3.0.9", "10.9.0.1", "10.1.0.255"];
        Gen.Select(OptionBytes, Gen.Int[0, dsts.Length - 1], Gen.Bool).Sample((options, d, echo) =>
        {
            var ip = echo ? Icmp("10.1.0.2", dsts[d], 8, 0, 7, new byte[] { 0, 1, 2, 3 }) : Udp("10.1.0.2", 4000, dsts[d], 9);
            long before = ns.Counters.Received;
            rig.Inject("r", "r0", Eth("02:00:00:01:00:02", "02:00:00:01:00:01", Ipv4OptionsPathTests.WithOptions(ip, options)));
            Assert.True(ns.Counters.Received > before);
            Assert.True(ns.Counters.Conserved, "r's counters do not add up");
            Assert.True(rig.Ns("left").Counters.Conserved && rig.Ns("right").Counters.Conserved);
        }, iter: 3000, threads: 1);
        Assert.True(ns.Counters.Drops[DropReason.IpOptionsMalformed] > 0);
        Assert.True(ns.Counters.Forwarded > 0);
    }
}
