using Softnet.Link;
using Softnet.Napi;

namespace Softnet.Transport;

/// <summary>
/// The applications reading the scenario's sockets, on their CPUs (`cpu N` in a sockets file), in deterministic
/// mode: a woken reader becomes a task on that CPU of the NAPI engine and reads when the CPU time its read needs has
/// passed in the time softirq leaves it (<see cref="CpuTask"/>). A read costs <see cref="NsPerRead"/> plus
/// <see cref="NsPerByte"/> per byte it copies (recvmsg and copy_to_user): parameters to calibrate, as
/// --poll-cost-ns is for the driver. Readers without a CPU, or on a CPU the engine does not run, read at once.
/// </summary>
/// <param name="stackOffsetNs">the stack's clock minus the engine's (the capture time the engine's 1 ns stands for, less 1)</param>
public sealed class SocketReaderCpus(NapiEngine engine, NetStack stack, double nsPerByte, long nsPerRead, Func<long> stackOffsetNs)
{
    private readonly Dictionary<Sock, ReaderTask> _tasks = new(ReferenceEqualityComparer.Instance);

    public double NsPerByte { get; } = nsPerByte;
    public long NsPerRead { get; } = nsPerRead;

    /// <summary>sk_data_ready for a reader with a CPU: false when it has none the engine runs (it reads at once).</summary>
    internal bool TryWake(Sock s, long nowNs)
    {
        if (s.Cpu < 0) return false;
        SoftnetCpu? cpu = null;
        foreach (var c in engine.Cpus)
            if (c.Id == s.Cpu) { cpu = c; break; }
        if (cpu is null) return false;
        if (!_tasks.TryGetValue(s, out var task)) _tasks[s] = task = new ReaderTask(this, s);
        cpu.WakeTask(task, Math.Max(nowNs - _offset(), engine.RoundNs));
        return true;
    }

    /// <summary>sock_owned_by_user for a TCP socket whose reader took it at <see cref="TcpSock.LockedAtNs"/>, asked
    /// by softirq at the stack's <paramref name="stackNowNs"/>: a reader woken during the current round on the round's
    /// own CPU has not run yet (softirq runs before any task there), so it holds nothing yet.</summary>
    internal bool Owns(TcpSock s, long stackNowNs)
    {
        long locked = s.LockedAtNs;
        if (engine.InRound && engine.Current is { } c && c.Id == s.Cpu && locked >= engine.RoundNs) return false;
        return locked <= Math.Max(stackNowNs - _offset(), engine.RoundNs);
    }

    private sealed class ReaderTask(SocketReaderCpus owner, Sock sock) : CpuTask
    {
        private long _charged;

        // tcp_recvmsg's lock_sock: until the read ends, segments for the socket go to its backlog.
        public override long Start(long nowNs)
        {
            if (sock is TcpSock t && owner.TakesTime) t.LockedAtNs = nowNs;
            _charged = sock.ReadableBytes;
            return owner.NsPerRead + (long)(_charged * owner.NsPerByte);
        }

        // recvmsg keeps copying while data keeps coming: what arrived during the copy is copied too, the backlog
        // first processed into the receive queue (__sk_flush_backlog in tcp_recvmsg_locked), on this CPU.
        public override long More(long nowNs)
        {
            if (sock is TcpSock { HasBacklog: true } t)
            {
                var stack = owner._stack;
                stack.AdvanceClock(nowNs + owner._offset());
                t.ProcessBacklog(stack);
                stack.Drain();
            }
            long extra = sock.ReadableBytes - _charged;
            if (extra <= 0) return 0;
            _charged += extra;
            return Math.Max(1, (long)(extra * owner.NsPerByte));
        }

        public override void Complete(long nowNs)
        {
            var stack = owner._stack;
            stack.AdvanceClock(nowNs + owner._offset());
            stack.ReadNow(sock);
            if (sock is TcpSock t)
            {
                // release_sock: the owner mark goes first, so a wake-up from the backlog's data (a next read that
                // starts now) takes the socket anew; then __release_sock runs what the backlog holds.
                t.LockedAtNs = long.MaxValue;
                t.ProcessBacklog(stack);
            }
            stack.Drain();
        }
    }

    /// <summary>A read takes virtual time: only then does the reader hold the socket for a while.</summary>
    private bool TakesTime => NsPerRead > 0 || NsPerByte > 0;

    private readonly NetStack _stack = stack;
    private readonly Func<long> _offset = stackOffsetNs;
}
