CREATE SCHEMA IF NOT EXISTS "network_ipam";
--> statement-breakpoint
CREATE TABLE "network_ipam"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
